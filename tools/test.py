"""Evaluate a checkpoint: top-1/top-5 of the joint classifier and, for distilled DeiT
students, of the class head and the distillation head separately.

    kdzoo test CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json]
                      [--cfg-options KEY=VALUE ...] [--launcher pytorch]

(``python tools/test.py`` in a checkout.) CONFIG is a config file or the name of a
shipped config.
"""
import json
import os.path as osp

from mmengine.config import Config

from kdzoo.apis.tool_args import (add_cfg_options, add_config_argument, add_launcher_arguments,
                                  parse_launcher_args, tool_parser)

EXAMPLES = ('kdzoo test deit_micro_cifar10 work_dirs/micro/epoch_20.pth',
            'kdzoo test my_config.py work_dirs/my_config/epoch_300.pth --out metrics.json',
            'tools/dist_test.sh configs/deit/deit_s_distilled.py CKPT 8   # 8 processes')

HEAD_NAMES = (('joint', 'joint classifier'), ('cls', 'class head'),
              ('dist', 'distillation head'))


def parse_args(argv=None):
    parser = tool_parser('Test a kdzoo checkpoint: top-1/top-5 of the joint classifier '
                         'and of each head.', EXAMPLES)
    add_config_argument(parser)
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the evaluation logs')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast during testing')
    parser.add_argument('--fp32', action='store_true',
                        help="float32 (no autocast), whatever the config's env_cfg.precision says")
    add_cfg_options(parser)
    parser.add_argument('--allow-unread', action='store_true',
                        help='run even if a --cfg-options key is read by nothing (warn in the '
                        'log)')
    add_launcher_arguments(parser)
    return parse_launcher_args(parser, argv)


def format_metrics(metrics):
    """A small table: one row per head, top-1 and top-5 columns."""
    rows = [f"{'head':<20}{'top-1 (%)':>12}{'top-5 (%)':>12}"]
    for key, name in HEAD_NAMES:
        if f'{key}/top1' in metrics:
            top5 = metrics.get(f'{key}/top5')
            rows.append(f"{name:<20}{metrics[f'{key}/top1']:>12.2f}"
                        f"{'' if top5 is None else f'{top5:.2f}':>12}")
    return '\n'.join(rows)


def names_teacher_weights(options):
    """Whether ``--cfg-options`` say where the teacher's weights come from
    (``model.teacher.checkpoint``, ``pretrained`` or ``random_init``, or the whole
    ``model.teacher`` / ``model``): then they are used as given."""
    for key in options or ():
        parts = key.split('.')
        if parts[0] != 'model' or (len(parts) > 1 and parts[1] != 'teacher'):
            continue
        if len(parts) <= 2 or parts[2] in ('checkpoint', 'pretrained', 'random_init'):
            return True
    return False


def teacher_without_weights_if_missing(cfg):
    """Build the teacher without weights when the checkpoint the config names cannot be
    had (a missing file, a URL offline): distiller checkpoints do not hold the teacher,
    and testing needs only the student."""
    teacher = cfg.model.get('teacher')
    if teacher is None or teacher.get('checkpoint') is None:
        return
    from kdzoo.models.checkpoint import resolve_checkpoint
    try:
        resolve_checkpoint(teacher.checkpoint)
    except OSError as e:  # a missing file, or a URL that cannot be downloaded
        print(f'{e}: the teacher is built without weights; testing needs only the student '
              '(--cfg-options model.teacher.checkpoint=PATH uses a local copy)')
        teacher.checkpoint, teacher.random_init = None, True


def main(argv=None):
    args = parse_args(argv)
    import kdzoo  # noqa: F401
    from kdzoo.apis.data import missing_data
    from kdzoo.compat import finish_distributed, init_distributed
    from kdzoo.engine import Runner
    from kdzoo.engine.config_check import unread_error, unread_options

    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'{what} file {path!r} does not exist')
    cfg = Config.fromfile(args.config)
    unread = unread_options(cfg, args.cfg_options)
    if unread and not args.allow_unread:
        raise SystemExit(unread_error(unread))
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    # Loaded strictly below: mmengine's load_from would accept another model's checkpoint.
    cfg.load_from = None
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # bf16 autocast or float32: --amp, --fp32, else env_cfg.precision (kdzoo/numerics.py).
    from kdzoo.numerics import apply_precision
    try:
        apply_precision(cfg, amp=args.amp, fp32=args.fp32)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if not names_teacher_weights(args.cfg_options):
        teacher_without_weights_if_missing(cfg)
    missing = missing_data(cfg, ('test_dataloader',))
    if missing:
        raise SystemExit('\n'.join(missing))
    distributed = init_distributed(args.launcher)
    runner = Runner.from_cfg(cfg)
    for note in unread:
        runner.logger.warning(note)
    from mmengine.model import is_model_wrapper

    from kdzoo.models.checkpoint import load_strictly
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    try:
        load_strictly(model, args.checkpoint)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    runner.logger.info(f'loaded {args.checkpoint} (every key matched)')
    metrics = runner.test()
    if runner.rank == 0:
        print(format_metrics(metrics), flush=True)
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(metrics, f, indent=2)
    finish_distributed(distributed)
    return metrics


if __name__ == '__main__':
    main()
