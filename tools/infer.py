"""Classify images with a trained student.

    kdzoo infer CONFIG CHECKPOINT PATH [PATH ...] [--device cpu] [--topk 3]
                [--batch-size 32] [--cfg-options KEY=VALUE ...]

(``python tools/infer.py`` in a checkout.)
CONFIG is a config file or a shipped config name; CHECKPOINT a kdzoo checkpoint (or
``-`` with an exported ``--to kdzoo`` file as CONFIG). A PATH is an image file or a folder
(every image file under it, recursively, sorted by path); images of any size are brought
to the model's input size by the config's test pipeline (see ``kdzoo.Predictor``). Prints
one row per image: the joint classifier's top-k classes and scores, and for a student
with a distillation token the class head's and the distillation head's top-1.
"""
from kdzoo.apis.tool_args import add_cfg_options, add_config_argument, tool_parser

EXAMPLES = ('kdzoo infer deit_micro_distilled_cifar10 work_dirs/micro/epoch_20.pth cat.jpg '
            'photos/ --topk 3',
            'kdzoo infer student.pth - cat.jpg          # a file written by kdzoo export '
            '--to kdzoo')


def parse_args(argv=None):
    parser = tool_parser('Classify images (files or folders, any size) with a trained '
                         'kdzoo student.', EXAMPLES)
    add_config_argument(parser, help='a config file, the name of a config shipped with kdzoo '
                        '(`kdzoo list-configs`), or a file written by kdzoo export --to kdzoo')
    parser.add_argument('checkpoint', help="checkpoint file, or '-' for an exported file")
    parser.add_argument('images', nargs='+', metavar='PATH',
                        help='image files or folders of images (searched recursively)')
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda:0'")
    parser.add_argument('--topk', type=int, default=1, help='classes shown per image')
    parser.add_argument('--batch-size', type=int, default=32)
    add_cfg_options(parser)
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
    from kdzoo.apis.inference import list_images
    try:
        images = list_images(args.images)  # before the model is built
        checkpoint = None if args.checkpoint == '-' else args.checkpoint
        model = get_model(args.config, checkpoint, args.device, args.cfg_options)
        predictor = Predictor(model, batch_size=args.batch_size)
        results = predictor(images)
    except (ConfigError, OSError, ValueError, TypeError) as e:
        raise SystemExit(f'error: {e}') from None
    topk = min(args.topk, len(results[0]['pred_scores']))
    print(format_results(images, results, predictor.classes, topk))
    return results


if __name__ == '__main__':
    main()
