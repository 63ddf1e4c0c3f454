"""Classify images with a trained student.

    python tools/infer.py CONFIG CHECKPOINT IMAGE [IMAGE ...] [--device cpu] [--topk 3]
                          [--batch-size 32] [--cfg-options KEY=VALUE ...]

CONFIG is a config file or a shipped config name; CHECKPOINT a kdzoo checkpoint (or
``-`` with an exported ``--to kdzoo`` file as CONFIG). Prints one row per image: the
joint classifier's top-k classes and scores, and for a student with a distillation token
the class head's and the distillation head's top-1.
"""
import argparse

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Classify images with a kdzoo student')
    parser.add_argument('config', help='config file path, shipped config name, or a file '
                        'written by tools/export.py --to kdzoo')
    parser.add_argument('checkpoint', help="checkpoint file, or '-' for an exported file")
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda:0'")
    parser.add_argument('--topk', type=int, default=1, help='classes shown per image')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    args = parser.parse_args(argv)
    if args.topk < 1 or args.batch_size < 1:
        parser.error('--topk and --batch-size must be positive')
    return args


def format_results(images, results, classes, topk):
    """A table: image, top-k (class score), and the per-head top-1 when there are heads."""
    def name(label):
        return classes[label] if classes else str(label)

    heads = 'cls_scores' in results[0]
    rows = [['image', f'top-{topk} (joint)' if heads else f'top-{topk}']
            + (['class head', 'distillation head'] if heads else [])]
    for image, res in zip(images, results):
        order = res['pred_scores'].argsort()[::-1][:topk]
        row = [image, ', '.join(f"{name(i)} {res['pred_scores'][i]:.3f}" for i in order)]
        for key in ('cls_scores', 'dist_scores') if heads else ():
            i = int(res[key].argmax())
            row.append(f'{name(i)} {res[key][i]:.3f}')
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return '\n'.join('  '.join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                     for r in rows)


def main(argv=None):
    args = parse_args(argv)
    from kdzoo.apis import ConfigError, Predictor, get_model
    try:
        checkpoint = None if args.checkpoint == '-' else args.checkpoint
        model = get_model(args.config, checkpoint, args.device, args.cfg_options)
        predictor = Predictor(model, batch_size=args.batch_size)
        results = predictor(list(args.images))
    except (ConfigError, FileNotFoundError, ValueError, TypeError) as e:
        raise SystemExit(f'error: {e}') from None
    topk = min(args.topk, len(results[0]['pred_scores']))
    print(format_results(args.images, results, predictor.classes, topk))
    return results


if __name__ == '__main__':
    main()
