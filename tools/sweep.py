"""Train configs x seeds one after another and summarise them (mean +- std, curves).

    python tools/sweep.py CONFIG [CONFIG ...] --seeds 0 1 2 [--work-dir work_dirs/sweep]
                          [--cfg-options KEY=VALUE ...] [--metric joint/top1]

Each run works in WORK_DIR/<config name>/seed<k>; a finished run is skipped when the
command is run again, an interrupted one resumes from its latest checkpoint. Writes
WORK_DIR/results.md, results.csv and curves.png.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train configs x seeds and summarise them')
    parser.add_argument('configs', nargs='+', metavar='CONFIG',
                        help='config files or shipped config names')
    parser.add_argument('--seeds', nargs='+', type=int, required=True,
                        help='the seeds of every config (randomness.seed)')
    parser.add_argument('--work-dir', default='work_dirs/sweep',
                        help='the sweep folder (one subfolder per config and seed)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every run, e.g. train_cfg.max_epochs=10')
    parser.add_argument('--metric', default='joint/top1',
                        help='the test metric the table leads with and the curves show')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from kdzoo.apis import ConfigError, run_sweep
    try:
        _, table = run_sweep(args.configs, args.seeds, args.work_dir, args.cfg_options,
                             args.metric)
    except ConfigError as e:
        raise SystemExit(f'sweep: {e}')
    print('\n' + table)
    written = [n for n in ('results.md', 'results.csv', 'curves.png')
               if osp.exists(osp.join(args.work_dir, n))]
    print(f'\nwritten in {args.work_dir}: {", ".join(written)}')


if __name__ == '__main__':
    main()
