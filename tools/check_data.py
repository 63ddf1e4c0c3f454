"""Decode every image of a class-folder dataset and list the ones that cannot be read.

    python tools/check_data.py ROOT [--workers N] [--no-progress]

ROOT is ``ROOT/<class>/<image>`` or a dataset root with ``train/``, ``val/`` or ``test/``
class folders in it. Exits with 1 when an image cannot be decoded or a class folder holds
no image, so it can guard a long run: ``python tools/check_data.py data/imagenet && ...``.
"""
import sys

from kdzoo.apis.tool_args import tool_parser

EXAMPLES = ('kdzoo check-data data/cifar10',
            'kdzoo check-data data/imagenet --workers 16 && kdzoo train deit_s ...')


def parse_args(argv=None):
    parser = tool_parser('Check that every image of a class-folder dataset decodes, and '
                         'list the ones that do not.', EXAMPLES)
    parser.add_argument('root', help='class-folder dataset (ROOT/<class>/<image>) or '
                        'dataset root (ROOT/{train,val,test}/<class>/<image>)')
    parser.add_argument('--workers', type=int, default=None,
                        help='decoding processes (default: every CPU; 0: none)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from kdzoo.datasets.check import check_image_folder
    try:
        report = check_image_folder(args.root, workers=args.workers,
                                    progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}') from None
    print(report.format(), flush=True)
    return report


if __name__ == '__main__':
    sys.exit(0 if main().ok else 1)
