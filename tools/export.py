"""Export a trained student for use without kdzoo (timm, mmpretrain) or with kdzoo alone.

    kdzoo export CONFIG CHECKPOINT --to {timm,mmpretrain,kdzoo} --out FILE
                 [--cfg-options KEY=VALUE ...]

(``python tools/export.py`` in a checkout.) CONFIG is a config file or the name of a
shipped config.

Writes the student alone (no teacher, connectors or optimizer state) as tensors that
``torch.load(FILE, weights_only=True)`` reads, checks that the printed code loads it with
the student's logits, and prints that code. The code carries the student's preprocessing
for images of any size: timm's ``pretrained_cfg_overlay`` (mean, std, input size,
crop_pct, crop_mode, interpolation, read by ``timm.data.resolve_data_config``), or
mmpretrain's config (data preprocessor and ``test_dataloader.dataset.pipeline``, with the
class names in the file, for ``ImageClassificationInferencer``).
"""
from kdzoo.apis.tool_args import add_cfg_options, add_config_argument, tool_parser

TARGETS = ('timm', 'mmpretrain', 'kdzoo')
EXAMPLES = ('kdzoo export deit_micro_distilled_cifar10 work_dirs/micro/epoch_20.pth --to timm '
            '--out student_timm.pth',
            'kdzoo export dearkd_micro_cifar10 work_dirs/dearkd --to kdzoo --out student.pth')


def parse_args(argv=None):
    parser = tool_parser('Export the student of a kdzoo checkpoint for timm, mmpretrain or '
                         'kdzoo alone.', EXAMPLES)
    add_config_argument(parser)
    parser.add_argument('checkpoint', help='checkpoint of the Distiller or Classifier '
                        '(or its work dir, for the latest one)')
    parser.add_argument('--to', required=True, choices=TARGETS,
                        help="layout: timm's or mmpretrain's model, or kdzoo's (any student)")
    parser.add_argument('--out', required=True, help='file to write')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from kdzoo.apis import ConfigError, export_student
    try:
        result = export_student(args.config, args.checkpoint, args.to, args.out,
                                args.cfg_options)
    except (ConfigError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}') from None
    print(f"wrote {result['out']}: the student's {result['tensors']} tensors in "
          f"{result['to']}'s layout (logits match the student's within "
          f"{result['max_abs_diff']:.1e})")
    print('load it with:')
    print(''.join(f'    {line}\n' for line in result['code'].splitlines()), end='')
    return result


if __name__ == '__main__':
    main()
