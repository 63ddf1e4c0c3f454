"""Record a distiller's teacher once on every replayed training view of a run's schedule.

    kdzoo record-teacher CONFIG [--out DIR] [--epochs N] [--kind class|topk|logits] [--k K]
                         [--dtype float16|bfloat16|float32] [--chunk N] [--batch-size N]
                         [--teacher teacher|NAME]
                         [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

(``python tools/record_teacher.py`` in a checkout.) CONFIG is a distillation config file
or the name of a shipped one whose training loader uses ReplaySampler (the shipped CIFAR-10
configs do). A run then reads the record with ``--cfg-options
model.teacher_outputs=DIR`` instead of running the teacher. Prints the record's size
first; several processes (``torchrun --nproc-per-node 8 tools/record_teacher.py CONFIG
--launcher pytorch``) share the chunks, and an interrupted recording resumes where it
stopped when run again. On a terminal a bar shows the chunks, elsewhere log lines do.
``--teacher NAME`` records the teacher NAME of ``model.teachers`` instead (read with
``--cfg-options model.teacher_outputs.NAME=DIR``); a teacher with a view is recorded on it.
"""

from kdzoo.apis.tool_args import (add_cfg_options, add_config_argument, add_launcher_arguments,
                                  parse_launcher_args, tool_parser)

EXAMPLES = ('kdzoo record-teacher deit_micro_distilled_cifar10',
            'kdzoo record-teacher deit_micro_distilled_cifar10 --epochs 5 --kind topk --k 5 '
            '--out work_dirs/records/micro_top5',
            'kdzoo record-teacher deit_micro_2teachers_cifar10 --teacher resnet56',
            'torchrun --nproc-per-node 8 tools/record_teacher.py '
            'configs/deit/deit_s_distilled.py --launcher pytorch --kind topk')


def parse_args(argv=None):
    from kdzoo.records import OUTPUT_KINDS
    from kdzoo.records.teacher_record import DTYPES
    parser = tool_parser("Record a distiller's teacher once on every replayed training view "
                         "of a run's schedule, for runs to read instead of the teacher.",
                         EXAMPLES)
    add_config_argument(parser, help='a distillation config whose training sampler is '
                        'ReplaySampler: a file, or the name of a config shipped with kdzoo '
                        "(`kdzoo list-configs '*distilled*'`), e.g. "
                        'deit_micro_distilled_cifar10')
    parser.add_argument('--out', help='the record folder (default: work_dirs/records/'
                        '<config name>_seed<data seed>)')
    parser.add_argument('--epochs', type=int,
                        help='epochs to record (default: train_cfg.max_epochs)')
    parser.add_argument('--kind', choices=OUTPUT_KINDS,
                        help="what is kept per view: the teacher's class, its top-k logits "
                        "and the rest's mass, or all logits (default: logits up to 100 "
                        'classes, else topk)')
    parser.add_argument('--k', type=int, default=10, help='k of --kind topk (default 10)')
    parser.add_argument('--dtype', choices=DTYPES, default='float16',
                        help='stored float type of logits (default float16)')
    parser.add_argument('--chunk', type=int, default=1024,
                        help='positions per chunk, the unit of resuming (even; default 1024)')
    parser.add_argument('--teacher', default='teacher',
                        help="the teacher to record: 'teacher' (model.teacher, the default) "
                        'or a name of model.teachers')
    parser.add_argument('--batch-size', type=int,
                        help="the teacher's batch (default: train_dataloader.batch_size)")
    add_cfg_options(parser)
    add_launcher_arguments(parser)
    return parse_launcher_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    import kdzoo  # noqa: F401  (compatibility fixes, registries)
    from kdzoo.apis import ConfigError
    from kdzoo.apis.record_teacher import record_teacher
    from kdzoo.compat import finish_distributed

    try:
        result = record_teacher(args.config, out=args.out, epochs=args.epochs, kind=args.kind,
                                k=args.k, dtype=args.dtype, chunk=args.chunk,
                                cfg_options=args.cfg_options, launcher=args.launcher,
                                batch_size=args.batch_size, teacher=args.teacher)
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    finish_distributed(args.launcher != 'none')
    return result


if __name__ == '__main__':
    main()
