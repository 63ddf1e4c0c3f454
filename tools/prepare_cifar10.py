"""Unpack CIFAR-10 (class-folder JPEG layout) where the configs expect it: data/cifar10.

    kdzoo prepare-cifar10                                   # the subset shipped with kdzoo
    kdzoo prepare-cifar10 --archive cifar10-jpeg.tar.gz     # a full copy
    kdzoo prepare-cifar10 --out data/cifar10_mini           # elsewhere: point the configs there
                                                            # (train_dataloader.dataset.data_root=...)

The archive must hold ``<name>/train/<class>/*.jpg`` and ``<name>/test/<class>/*.jpg``.
The shipped subset is 500 training and 100 test images per class, drawn with a fixed seed
from the full set. Unpacking goes to a temporary folder first and is renamed into place,
so an interrupted run never leaves a half-written dataset behind.
"""
from kdzoo.apis import MINI_CIFAR10, ConfigError, unpack_archive
from kdzoo.apis.data import CIFAR10_ROOT
from kdzoo.apis.tool_args import tool_parser

EXAMPLES = ('kdzoo prepare-cifar10                                 # the shipped subset',
            'kdzoo prepare-cifar10 --archive cifar10-jpeg.tar.gz   # a full copy')


def main(argv=None):
    parser = tool_parser(__doc__.split('\n')[0], EXAMPLES)
    parser.add_argument('--archive', help='a CIFAR-10 class-folder tar.gz (default: the '
                        'subset shipped with kdzoo)')
    parser.add_argument('--out', default=CIFAR10_ROOT,
                        help='destination (default: %(default)s, where the configs read it)')
    args = parser.parse_args(argv)
    archive = args.archive or MINI_CIFAR10
    out = args.out
    try:
        return unpack_archive(archive, out)
    except ConfigError as e:
        raise SystemExit(str(e)) from None


if __name__ == '__main__':
    main()
