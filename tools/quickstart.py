"""The main job on the CIFAR-10 subset shipped with kdzoo, no network needed:

1. unpack the subset (500 train / 100 test images per class) to data/cifar10_mini,
2. train the CNN teacher (configs/deit/resnet20_cifar10.py) on it,
3. distil a DeiT-style student from it (configs/deit/deit_micro_distilled_cifar10.py),
4. optionally train the same student without distillation (--baseline),
5. print a results table (also written to WORK_DIR/results.md).

    python tools/quickstart.py [--epochs-teacher 6] [--epochs-student 6] [--baseline]
"""
import argparse
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def epoch_schedule(cfg, epochs, warmup):
    """Rescale a config's warm-up + cosine schedule to ``epochs``."""
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs
    warm, cosine = cfg.param_scheduler
    warm.end = warmup
    cosine.begin, cosine.end, cosine.T_max = warmup, epochs, epochs - warmup


def run(config, work_dir, data_root, epochs, warmup, seed, extra=None):
    from mmengine.config import Config
    from kdzoo.engine import Runner

    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.work_dir = work_dir
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    cfg.train_dataloader.dataset.subset_ratio = 1.0  # the shipped data is the subset
    cfg.randomness = dict(seed=seed)
    cfg.default_hooks.logger.interval = 10
    epoch_schedule(cfg, epochs, warmup)
    if extra:
        cfg.merge_from_dict(extra)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.test()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument('--epochs-teacher', type=int, default=6)
    parser.add_argument('--epochs-student', type=int, default=6)
    parser.add_argument('--baseline', action='store_true',
                        help='also train the student without distillation')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    for name in ('epochs_teacher', 'epochs_student'):
        if getattr(args, name) < 2:
            raise SystemExit(f'--{name.replace("_", "-")} must be at least 2')

    from kdzoo.apis import MINI_CIFAR10, unpack_archive

    data_root = unpack_archive(MINI_CIFAR10, osp.join('data', 'cifar10_mini'))
    teacher_dir = osp.join(args.work_dir, 'teacher')
    rows = [('teacher: ResNet-20 (CNN)',
             run('configs/deit/resnet20_cifar10.py', teacher_dir, data_root,
                 args.epochs_teacher, 1, args.seed))]
    if args.baseline:
        rows.append(('student, no distillation',
                     run('configs/deit/deit_micro_cifar10.py', osp.join(args.work_dir, 'student'),
                         data_root, args.epochs_student, 2, args.seed)))
    rows.append(('student, distilled',
                 run('configs/deit/deit_micro_distilled_cifar10.py',
                     osp.join(args.work_dir, 'student_distilled'), data_root,
                     args.epochs_student, 2, args.seed,
                     {'model.teacher.checkpoint': teacher_dir})))

    def cell(m, key):
        return f'{m[key]:.2f}' if key in m else '-'
    lines = [f'CIFAR-10 subset shipped with kdzoo (5,000 train / 1,000 test images), '
             f'seed {args.seed}, teacher {args.epochs_teacher} epochs, students '
             f'{args.epochs_student} epochs', '',
             '| model | joint top-1 | class head top-1 | distillation head top-1 |',
             '|---|---:|---:|---:|']
    for name, m in rows:
        lines.append(f"| {name} | {cell(m, 'joint/top1')} | {cell(m, 'cls/top1')} "
                     f"| {cell(m, 'dist/top1')} |")
    table = '\n'.join(lines)
    os.makedirs(args.work_dir, exist_ok=True)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    print('\n' + table)
    return rows


if __name__ == '__main__':
    main()
