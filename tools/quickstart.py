"""Does distillation help? Three students from one teacher on the CIFAR-10 subset shipped
with kdzoo (no network needed):

1. unpack the subset (500 train / 100 test images per class) to DATA_DIR,
2. train the CNN teacher (configs/deit/resnet20_cifar10.py) once,
3. train three students with the same schedule from that teacher: no distillation
   (deit_micro_cifar10), DeiT hard distillation (deit_micro_distilled_cifar10) and
   DearKD (dearkd_micro_cifar10), for each seed,
4. print the results table (the teacher's accuracy included) and write
   WORK_DIR/results.md, results.csv and curves.png.

Steps 2-4 are sweeps (kdzoo.apis.run_sweep) over the prepared configs, which are kept in
WORK_DIR/configs, so ``tools/sweep.py WORK_DIR/configs/*.py --seeds ...`` repeats them.
Running the command again skips every finished run.

    python tools/quickstart.py [--epochs-teacher 6] [--epochs-student 3] [--seeds 0 ...]
                               [--amp | --fp32]

Precision: the configs' ``env_cfg.precision`` ('auto': bf16 autocast on a CPU with
AVX512-BF16 or AMX-BF16 and on GPUs with bf16, float32 elsewhere); ``--fp32`` or
``--amp`` sets it for every run (give another --work-dir: a sweep refuses to mix runs
of other settings).
"""
import os
import os.path as osp

TEACHER = 'deit/resnet20_cifar10'
STUDENTS = ('deit/deit_micro_cifar10', 'deit/deit_micro_distilled_cifar10',
            'dearkd/dearkd_micro_cifar10')


def parse_args(argv=None):
    from kdzoo.apis.tool_args import add_precision_flags, tool_parser
    parser = tool_parser(__doc__.split('\n')[0], (
        'kdzoo quickstart',
        'kdzoo quickstart --epochs-student 6 --seeds 0 1 2 --work-dir work_dirs/qs3'))
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument('--data-dir', default=osp.join('data', 'cifar10_mini'),
                        help='where the shipped subset is unpacked')
    parser.add_argument('--epochs-teacher', type=int, default=6)
    parser.add_argument('--epochs-student', type=int, default=3)
    add_precision_flags(parser)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0],
                        help='the students\' seeds (the teacher is trained once, seed 0)')
    args = parser.parse_args(argv)
    for name in ('epochs_teacher', 'epochs_student'):
        if getattr(args, name) < 2:
            parser.error(f'--{name.replace("_", "-")} must be at least 2, got '
                         f'{getattr(args, name)}')
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f'--seeds must be distinct integers >= 0, got {args.seeds}')
    return args


def rescale_schedule(cfg, epochs, warmup):
    """Fit a config's warm-up + cosine schedule to ``epochs``, validating every epoch. A
    stage switch given as an epoch is moved in proportion (a ratio needs no change)."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = 1
    warm, cosine = cfg.param_scheduler
    warm.end = warmup
    cosine.begin, cosine.end, cosine.T_max = warmup, epochs, epochs - warmup
    stage = cfg.default_hooks.get('distill_stage')
    if stage is not None and stage.get('switch_epoch') is not None:
        stage.switch_epoch = round(stage.switch_epoch * epochs / old)


def prepare(config, data_root, epochs, warmup, teacher_dir=None, precision=None):
    """The shipped config ``config`` set up for the quickstart (``precision``: the
    ``env_cfg.precision`` to set, None to keep the config's)."""
    from kdzoo.apis import find_config, load_config
    cfg = load_config(find_config(config))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    cfg.train_dataloader.dataset.subset_ratio = 1.0  # the shipped data is the subset
    cfg.default_hooks.logger.interval = 10
    rescale_schedule(cfg, epochs, warmup)
    if cfg.model.get('teacher') is not None:
        cfg.model.teacher.checkpoint = teacher_dir
    if precision is not None:
        cfg.env_cfg.precision = precision
    return cfg


def dump(cfg, folder, config):
    """Write ``cfg`` as WORK_DIR/configs/<name>.py (a complete config) and return the path."""
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, osp.basename(config) + '.py')
    tmp = osp.join(folder, f'.{osp.basename(config)}.{os.getpid()}.py')  # dump needs .py
    cfg.dump(tmp)
    os.replace(tmp, path)
    return path


def main(argv=None):
    args = parse_args(argv)
    from kdzoo.apis import MINI_CIFAR10, run_sweep, unpack_archive
    from kdzoo.apis.tool_args import precision_option
    precision = precision_option(args)

    data_root = osp.abspath(unpack_archive(MINI_CIFAR10, args.data_dir))
    work_dir = osp.abspath(args.work_dir)
    configs = osp.join(work_dir, 'configs')
    teacher_cfg = dump(prepare(TEACHER, data_root, args.epochs_teacher, 1,
                                 precision=precision), configs, TEACHER)
    teacher_sweep = osp.join(work_dir, 'teacher')
    rows, _ = run_sweep([teacher_cfg], [0], teacher_sweep)
    teacher_top1 = rows[0]['mean']['joint/top1']
    teacher_dir = osp.join(teacher_sweep, osp.basename(TEACHER), 'seed0')
    students = [dump(prepare(c, data_root, args.epochs_student,
                             2 if args.epochs_student >= 4 else 1, teacher_dir, precision),
                      configs, c)
                for c in STUDENTS]
    _, table = run_sweep(students, args.seeds, work_dir)
    print(f'\nCIFAR-10 subset shipped with kdzoo (5,000 train / 1,000 test images); teacher '
          f'ResNet-20, {args.epochs_teacher} epochs: {teacher_top1:.2f}% top-1; students '
          f'{args.epochs_student} epochs each, seeds {" ".join(map(str, args.seeds))}\n')
    print(table)
    print(f'\nwritten: {work_dir}/results.md, results.csv, curves.png; the same sweep: '
          f'python tools/sweep.py {configs}/{{{",".join(osp.basename(c) for c in STUDENTS)}}}.py '
          f'--seeds ... --work-dir DIR')
    return table


if __name__ == '__main__':
    main()
