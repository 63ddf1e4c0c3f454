"""Synthesise a data-free training set from a trained teacher (DF-DearKD).

    kdzoo synthesize CONFIG [--out DIR] [--num-images N] [--work-dir DIR]
                     [--max-shards K] [--device DEV] [--amp | --fp32]
                     [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

(``python tools/synthesize.py`` in a checkout.) CONFIG is a config file or the name of a
shipped config with a ``synthesis`` section.

DeepInversion (Yin et al., CVPR 2020) with the boundary-preserving intra-divergence loss
of DF-DearKD (Chen et al., "DearKD", CVPR 2022, section 4). The config's ``synthesis``
section sets the teacher (default: ``model.teacher``), the synthesizer, the number of
images and the batch size; see configs/dearkd/README.md. Images are written as
OUT/<class>/<shard>_<i>.png, readable by ImageFolderSubset. Several processes (e.g.
``torchrun --nproc-per-node 8 tools/synthesize.py CONFIG --launcher pytorch``, or several
nodes) split the shards; an interrupted run resumes where it stopped when run again.
On a terminal, bars show the shards and the current shard's iterations (losses, ETA);
elsewhere (CI, a log file) a log line every tenth of a shard's iterations does.

The teacher runs under bf16 autocast where the run's precision says so (``env_cfg.precision``,
default 'auto': on CPUs with AVX512-BF16 or AMX-BF16 and GPUs with bf16; ``--fp32`` or
``--amp`` for this run; ``synthesis.synthesizer.bf16`` True or False wins over both);
the images, their prior and the BatchNorm statistics' distances stay float32. A teacher
with ``channels_last=True`` gets its images in channels-last memory format.
"""
import os
import os.path as osp
import time

from kdzoo.apis.tool_args import (add_cfg_options, add_config_argument, add_launcher_arguments,
                                  add_precision_flags, parse_launcher_args, tool_parser)

EXAMPLES = ('kdzoo synthesize df_dearkd_micro_cifar10 --num-images 200',
            'kdzoo synthesize df_dearkd_micro_cifar10 --cfg-options '
            '"synthesis.synthesizer.stages=[dict(size=16, iterations=50)]"',
            'torchrun --nproc-per-node 8 tools/synthesize.py configs/dearkd/df_dearkd_s.py '
            '--launcher pytorch')


def parse_args(argv=None):
    parser = tool_parser('Synthesise a data-free training set from a trained teacher '
                         '(DF-DearKD).', EXAMPLES)
    add_config_argument(parser, help='a config with a synthesis section: a file, or the '
                        'name of a config shipped with kdzoo (`kdzoo list-configs '
                        "'df_*'`), e.g. df_dearkd_micro_cifar10")
    parser.add_argument('--out', help='output folder (default: synthesis.out)')
    parser.add_argument('--num-images', type=int, help='default: synthesis.num_images')
    parser.add_argument('--work-dir', help='where to write the log (default: '
                        'work_dirs/<config name>)')
    parser.add_argument('--max-shards', type=int,
                        help='stop after this many new shards per process (for time-limited '
                        'jobs; run again to continue)')
    parser.add_argument('--device', help='default: cuda (this process\'s GPU) if available, '
                        'else cpu')
    add_precision_flags(parser, "the teacher's passes")
    add_cfg_options(parser, help='override config settings, e.g. synthesis.batch_size=50; '
                    'dicts as Python literals, e.g. '
                    '"synthesis.synthesizer.stages=[dict(size=16, iterations=50)]"')
    add_launcher_arguments(parser)
    return parse_launcher_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    import kdzoo  # noqa: F401  (compatibility fixes, registries)
    import torch
    import torch.distributed as dist
    from mmengine.logging import MMLogger

    from kdzoo.apis import ConfigError, class_names, load_config, synthesis_settings
    from kdzoo.compat import finish_distributed, init_distributed
    from kdzoo.numerics import default_precision, flush_denormals
    from kdzoo.registry import MODELS
    from kdzoo.synthesis import (ShardWriter, balanced_labels, merge_manifests, num_shards,
                                 run_shards, save_grid)

    if args.max_shards is not None and args.max_shards < 0:
        raise SystemExit(f'--max-shards must be >= 0, got {args.max_shards}')
    try:
        cfg = load_config(args.config, args.cfg_options)
        s = synthesis_settings(cfg, args.config, args.out, args.num_images, args.work_dir)
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    synthesizer = MODELS.build(s['synthesizer'])

    distributed = init_distributed(args.launcher)
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    # Subnormals flushed on the CPU; the teacher in bf16 where the synthesizer does not say
    # (env_cfg.precision; see kdzoo/numerics.py).
    try:
        flush_denormals(cfg)
        if s['synthesizer'].get('bf16') is None:
            synthesizer.bf16 = default_precision(cfg, device, args.amp, args.fp32) == 'bf16'
            # Resolved: a set is resumed only at the precision it was started with.
            s['synthesizer']['bf16'] = synthesizer.bf16
    except ValueError as e:
        raise SystemExit(str(e)) from None
    os.makedirs(s['work_dir'], exist_ok=True)
    # A fresh logger per run: mmengine keeps instances by name, with their first log file.
    # Appending keeps the record of the runs a resumed synthesis is made of.
    logger = MMLogger.get_instance(f'kdzoo_synthesize_{os.getpid()}_{time.time_ns()}',
                                   log_file=osp.join(s['work_dir'], 'synthesize.log'),
                                   file_mode='a')
    teacher = MODELS.build(s['teacher']).to(device)
    n_classes = teacher.num_classes(size=synthesizer.size)
    try:
        classes = class_names(cfg, s['syn'], n_classes)
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    settings = {k: s[k] for k in ('teacher', 'synthesizer', 'num_images', 'batch_size',
                                  'per_class_in_batch')}
    settings['classes'] = classes
    writer = ShardWriter(s['out'], classes, settings)
    labels = balanced_labels(s['num_images'], n_classes, s['per_class_in_batch'])
    total = num_shards(s['num_images'], s['batch_size'])
    logger.info(f"rank {rank}/{world}: {s['num_images']} images of {n_classes} classes in "
                f"{total} shards -> {writer.out}")
    start = time.perf_counter()
    written = run_shards(synthesizer, teacher, writer, labels, s['batch_size'], rank, world,
                         max_shards=args.max_shards, progress=rank == 0, logger=logger)
    seconds = time.perf_counter() - start
    made = sum(len(labels[i * s['batch_size']:(i + 1) * s['batch_size']]) for i in written)
    rate = f'{made / seconds:.2f} images/s' if made else 'nothing new'
    logger.info(f'rank {rank}: wrote shards {written}: {made} images in {seconds:.1f} s '
                f'({rate} on {device})')
    if distributed:
        dist.barrier()
    manifest = None
    if rank == 0:
        header = dict(teacher=s['teacher'], checkpoint=s['teacher']['checkpoint'],
                      seed=s['synthesizer']['seed'], classes=classes, settings=settings)
        try:
            manifest = merge_manifests(writer, total, header)
        except RuntimeError as e:  # --max-shards stopped early, or another rank failed
            logger.warning(f'manifest.json not written: {e}')
        if manifest is not None:
            grid = save_grid(writer, manifest, osp.join(writer.out, 'grid.png'),
                             **s['grid'])
            logger.info(f"{manifest['num_images']} images in {writer.out}; samples: {grid}")
        writer.finish()
    finish_distributed(distributed)
    return manifest


if __name__ == '__main__':
    main()
