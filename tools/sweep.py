"""Train configs x seeds one after another and summarise them (mean +- std, curves).

    kdzoo sweep CONFIG [CONFIG ...] --seeds 0 1 2 [--work-dir work_dirs/sweep]
                [--cfg-options KEY=VALUE ...] [--metric joint/top1] [--amp | --fp32]

(``python tools/sweep.py`` in a checkout.) A CONFIG is a config file or the name of a
shipped config.

Each run works in WORK_DIR/<config name>/seed<k>; a finished run is skipped when the
command is run again, an interrupted one resumes from its latest checkpoint. Writes
WORK_DIR/results.md, results.csv and curves.png.
"""
import os.path as osp

from kdzoo.apis.tool_args import (add_cfg_options, add_config_argument, add_precision_flags,
                                  precision_option, tool_parser)

EXAMPLES = ('kdzoo sweep deit_micro_cifar10 deit_micro_distilled_cifar10 --seeds 0 1 2 '
            '--work-dir work_dirs/sweep',
            'kdzoo sweep my_a.py my_b.py --seeds 0 1 --cfg-options train_cfg.max_epochs=10',
            'kdzoo sweep deit_micro_cifar10 --seeds 0 1 2 --fp32 --work-dir work_dirs/sweep_fp32')


def parse_args(argv=None):
    parser = tool_parser('Train configs x seeds one after another and summarise them '
                         '(mean +- std, curves).', EXAMPLES)
    add_config_argument(parser, 'configs', nargs='+', metavar='CONFIG')
    parser.add_argument('--seeds', nargs='+', type=int, required=True,
                        help='the seeds of every config (randomness.seed)')
    parser.add_argument('--work-dir', default='work_dirs/sweep',
                        help='the sweep folder (one subfolder per config and seed)')
    add_cfg_options(parser, help='override settings of every run; KEY=VALUE as in kdzoo '
                    'train, e.g. train_cfg.max_epochs=10')
    parser.add_argument('--allow-unread', action='store_true',
                        help='run even if a --cfg-options key is read by nothing (warn)')
    add_precision_flags(parser)
    parser.add_argument('--metric', default='joint/top1',
                        help='the test metric the table leads with and the curves show')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from kdzoo.apis import ConfigError, run_sweep
    options = dict(args.cfg_options or {})
    if precision_option(args):
        options['env_cfg.precision'] = precision_option(args)
    try:
        _, table = run_sweep(args.configs, args.seeds, args.work_dir, options or None,
                             args.metric, allow_unread=args.allow_unread)
    except ConfigError as e:
        raise SystemExit(f'sweep: {e}')
    print('\n' + table)
    written = [n for n in ('results.md', 'results.csv', 'curves.png')
               if osp.exists(osp.join(args.work_dir, n))]
    print(f'\nwritten in {args.work_dir}: {", ".join(written)}')


if __name__ == '__main__':
    main()
