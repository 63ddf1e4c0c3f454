"""Export a trained student for use without kdzoo (timm, mmpretrain) or with kdzoo alone.

    python tools/export.py CONFIG CHECKPOINT --to {timm,mmpretrain,kdzoo} --out FILE
                           [--cfg-options KEY=VALUE ...]

Writes the student alone (no teacher, connectors or optimizer state) as tensors that
``torch.load(FILE, weights_only=True)`` reads, checks that the printed code loads it with
the student's logits, and prints that code.
"""
import argparse

from mmengine.config import DictAction

TARGETS = ('timm', 'mmpretrain', 'kdzoo')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export the student of a kdzoo checkpoint')
    parser.add_argument('config', help='config file path or shipped config name')
    parser.add_argument('checkpoint', help='checkpoint of the Distiller or Classifier '
                        '(or its work dir, for the latest one)')
    parser.add_argument('--to', required=True, choices=TARGETS,
                        help="layout: timm's or mmpretrain's model, or kdzoo's (any student)")
    parser.add_argument('--out', required=True, help='file to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
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
