"""Train a kdzoo model (teacher, student or distiller) from a config.

    kdzoo train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                       [--cfg-options KEY=VALUE ...] [--launcher pytorch]

(``python tools/train.py`` in a checkout.) CONFIG is a config file or the name of a
shipped config.
"""
import os.path as osp

from mmengine.config import Config

from kdzoo.apis.tool_args import (add_cfg_options, add_config_argument, add_launcher_arguments,
                                  parse_launcher_args, tool_parser)

EXAMPLES = ('kdzoo train deit_micro_cifar10 --work-dir work_dirs/micro',
            'kdzoo train my_config.py --resume --cfg-options train_cfg.max_epochs=30',
            'tools/dist_train.sh configs/dearkd/dearkd_s.py 8   # 8 processes (GPUs)')


def parse_args(argv=None):
    parser = tool_parser('Train a kdzoo model (teacher, student or distiller) from a '
                         'config.', EXAMPLES)
    add_config_argument(parser)
    parser.add_argument('--work-dir', help='where to save logs and checkpoints')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                        'when no path is given')
    parser.add_argument('--amp', action='store_true',
                        help='bf16 mixed precision (autocast) on CPU or GPU')
    parser.add_argument('--fp32', action='store_true',
                        help="float32 (no autocast), whatever the config's env_cfg.precision says")
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual global batch size')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    add_cfg_options(parser)
    parser.add_argument('--allow-unread', action='store_true',
                        help='run even if a --cfg-options key is read by nothing (warn in the log)')
    add_launcher_arguments(parser)
    return parse_launcher_args(parser, argv)


def merge_args(cfg, args):
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # bf16 autocast or float32: --amp, --fp32, else env_cfg.precision (kdzoo/numerics.py).
    from kdzoo.numerics import apply_precision
    try:
        apply_precision(cfg, amp=args.amp, fp32=getattr(args, 'fp32', False))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    return cfg


def main(argv=None):
    args = parse_args(argv)
    import kdzoo  # noqa: F401  (compatibility fixes, registries)
    from kdzoo.apis.data import missing_data
    from kdzoo.compat import finish_distributed, init_distributed
    from kdzoo.engine import Runner
    from kdzoo.engine.config_check import unread_error, unread_options

    if not osp.isfile(args.config):
        raise SystemExit(f'config file {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    unread = unread_options(cfg, args.cfg_options)
    if unread and not args.allow_unread:
        raise SystemExit(unread_error(unread))
    cfg = merge_args(cfg, args)
    missing = missing_data(cfg, ('train_dataloader', 'val_dataloader'))
    if missing:
        raise SystemExit('\n'.join(missing))
    distributed = init_distributed(args.launcher)
    from kdzoo.records import RecordError
    try:  # a teacher record that does not serve this run: one line, before any step
        runner = Runner.from_cfg(cfg)
        for note in unread:
            runner.logger.warning(note)
        runner.train()
    except RecordError as e:
        raise SystemExit(f'{type(e).__name__}: {e}') from None
    finish_distributed(distributed)
    return runner


if __name__ == '__main__':
    main()
