"""Evaluate a checkpoint: top-1/top-5 of the joint classifier and, for distilled DeiT
students, of the class head and the distillation head separately.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json]
                         [--cfg-options KEY=VALUE ...] [--launcher pytorch]
"""
import argparse
import json
import os
import os.path as osp

from mmengine.config import Config, DictAction

HEAD_NAMES = (('joint', 'joint classifier'), ('cls', 'class head'),
              ('dist', 'distillation head'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a kdzoo model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the evaluation logs')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast during testing')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def format_metrics(metrics):
    """A small table: one row per head, top-1 and top-5 columns."""
    rows = [f"{'head':<20}{'top-1 (%)':>12}{'top-5 (%)':>12}"]
    for key, name in HEAD_NAMES:
        if f'{key}/top1' in metrics:
            top5 = metrics.get(f'{key}/top5')
            rows.append(f"{name:<20}{metrics[f'{key}/top1']:>12.2f}"
                        f"{'' if top5 is None else f'{top5:.2f}':>12}")
    return '\n'.join(rows)


def main(argv=None):
    args = parse_args(argv)
    import kdzoo  # noqa: F401
    from kdzoo.compat import finish_distributed, init_distributed
    from kdzoo.engine import Runner
    from kdzoo.engine.config_check import unread_options

    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'{what} file {path!r} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    # Loaded strictly below: mmengine's load_from would accept another model's checkpoint.
    cfg.load_from = None
    cfg.launcher = args.launcher
    teacher = cfg.model.get('teacher')
    if teacher is not None and teacher.get('checkpoint') is not None:
        # The teacher comes from its own checkpoint (distiller checkpoints do not hold it);
        # testing needs only the student, so a missing teacher file is no reason to stop.
        from kdzoo.models.checkpoint import resolve_checkpoint
        try:
            resolve_checkpoint(teacher.checkpoint)
        except OSError as e:  # a missing file, or a URL that cannot be downloaded
            print(f'{e}: the teacher is built without weights; testing needs only the student')
            teacher.checkpoint, teacher.random_init = None, True
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    unread = unread_options(cfg, args.cfg_options)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
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
