"""Record a distiller's teacher once for every replayed training view of its schedule
(``kdzoo record-teacher``), so that runs read the record instead of running the teacher.

The views are those of :mod:`kdzoo.datasets.replay`: the view at (epoch, position) is a
function of (data seed, epoch, sample id), and mixup/cutmix mix the pairs of the epoch's
order (``mix_mode='pair'``), so a chunk of whole pairs is preprocessed exactly as in
training, whatever the batch and the number of processes. For every (epoch, chunk) not
yet marked done, this module loads the chunk's samples through the run's own (replay)
dataset, preprocesses them with the model's data preprocessor in training mode, runs
``teacher_logits`` in eval mode without gradients and writes the chunk
(:class:`~kdzoo.records.TeacherRecord`). Several processes (``--launcher pytorch``) share
the chunks; a killed run resumes at the first chunk not marked done. The validation set's
rank of the true class among the teacher's logits is recorded too, so a run can report
the teacher's accuracy without it.

The model and data are built by kdzoo's Runner (``Runner.from_cfg``, the same preparation
as training), and the record's fingerprint is :func:`~kdzoo.records.run_fingerprint` of
the prepared config and the built training dataset, as the run that reads it computes it.

Any teacher of the distiller can be recorded (``teacher``: ``'teacher'`` for
``model.teacher`` or a name of ``model.teachers``), each into a record of its own, read back
with ``model.teacher_outputs=dict(teacher=PATH, NAME=PATH)``. A teacher that sees
its own view of the samples (``Teacher(view=...)``, :mod:`kdzoo.datasets.views`) is
recorded on that view, made by the run's own data path.
"""
import logging
import os
import os.path as osp
import time

import numpy as np
import torch

from .model import ConfigError

#: ImageNet-1k's training set and class count, for the reference size of a record.
IMAGENET_IMAGES, IMAGENET_CLASSES, IMAGENET_EPOCHS = 1_281_167, 1000, 300
#: Above this class count the default kind is 'topk' (``DEFAULT_K``), else 'logits'.
LOGITS_MAX_CLASSES, DEFAULT_K = 100, 10
DEFAULT_CHUNK = 1024


def _type_name(node):
    kind = node.get('type') if isinstance(node, dict) else None
    return kind.split('.')[-1] if isinstance(kind, str) else kind


def preprocessor_key(cfg):
    """(dotted key, config) of the data preprocessor a model is built with."""
    model = cfg.get('model') or {}
    if model.get('data_preprocessor') is not None:
        return 'model.data_preprocessor', model['data_preprocessor']
    return 'data_preprocessor', cfg.get('data_preprocessor') or {}


def teacher_keys(model):
    """The teachers of a model config: 'teacher' (``model.teacher``) and the names of
    ``model.teachers``."""
    out = ['teacher'] if model.get('teacher') is not None else []
    named = model.get('teachers') or {}
    return out + [n for n, c in named.items() if c is not None]


def check_record_config(cfg, teacher='teacher'):
    """Clear errors (:class:`ConfigError`, naming the key to set) for a config whose
    teacher ``teacher`` ('teacher' or a name of ``model.teachers``) cannot be recorded: no
    Distiller with that teacher, a training sampler other than ReplaySampler, mixing that
    is not per pair, no data seed."""
    from mmengine.registry import DefaultScope

    from kdzoo.models import Distiller
    from kdzoo.registry import MODELS
    model = cfg.get('model') or {}
    kind = model.get('type')
    with DefaultScope.overwrite_default_scope('kdzoo'):
        cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(cls, type) and issubclass(cls, Distiller)):
        raise ConfigError(f'record-teacher records the teacher of a Distiller; model.type is '
                          f'{kind!r}: use a distillation config (model.type=\'Distiller\' '
                          'with model.teacher), e.g. deit_micro_distilled_cifar10')
    keys = teacher_keys(model)
    if not keys:
        raise ConfigError('the Distiller has no teacher to record: set model.teacher')
    if teacher not in keys:
        raise ConfigError(f'there is no teacher {teacher!r} to record; the teachers of this '
                          f"config are {keys} (--teacher: 'teacher' for model.teacher, a "
                          'name of model.teachers)')
    loader = cfg.get('train_dataloader') or {}
    sampler = loader.get('sampler') or {}
    if _type_name(sampler) != 'ReplaySampler':
        raise ConfigError(
            f'train_dataloader.sampler is {_type_name(sampler)!r}; a record holds the views '
            "of a replayable run: set train_dataloader.sampler=dict(type='ReplaySampler') "
            '(kdzoo/datasets/replay.py)')
    key, pre = preprocessor_key(cfg)
    if pre.get('batch_augments'):
        if _type_name(pre) != 'ReplayClsDataPreprocessor':
            raise ConfigError(
                f'{key}.type is {_type_name(pre)!r} with batch_augments (mixup/cutmix), which '
                f"cannot be replayed: set {key}.type='ReplayClsDataPreprocessor' with "
                f"{key}.mix_mode='pair'")
        if pre.get('mix_mode', 'pair') != 'pair':
            raise ConfigError(
                f'{key}.mix_mode is {pre.get("mix_mode")!r}: mixing per batch depends on the '
                f"batch and the number of processes; set {key}.mix_mode='pair' to record")
    if sampler.get('data_seed') is None and (cfg.get('randomness') or {}).get('seed') is None:
        raise ConfigError('no data seed: randomness.seed is None (a random seed per run), so '
                          'no record can match a run; set train_dataloader.sampler.data_seed '
                          '(or randomness.seed) to an integer')


def schedule_epochs(cfg):
    """``train_cfg.max_epochs`` of an epoch-based schedule, else None."""
    train_cfg = cfg.get('train_cfg') or {}
    if train_cfg.get('by_epoch', True) is False or train_cfg.get('max_epochs') is None:
        return None
    return int(train_cfg['max_epochs'])


def default_kind(num_classes):
    """'logits' for up to ``LOGITS_MAX_CLASSES`` classes, else 'topk'."""
    return 'logits' if num_classes <= LOGITS_MAX_CLASSES else 'topk'


def size_line(positions, epochs, kind, k, dtype, num_classes):
    """One line: the record's size (positions x epochs x bytes per view) and, for
    reference, ImageNet-1k x 300 epochs in the chosen kind, as classes and as top-10."""
    from kdzoo.records import human_bytes, record_bytes
    from kdzoo.records.teacher_record import view_bytes
    per_view = view_bytes(kind, k, dtype, num_classes)
    total = record_bytes(kind, k, dtype, num_classes, positions, epochs)
    imagenet = IMAGENET_IMAGES + IMAGENET_IMAGES % 2  # the order pads to whole pairs

    def inet(kind_, k_):
        return human_bytes(record_bytes(kind_, k_, dtype, IMAGENET_CLASSES, imagenet,
                                        IMAGENET_EPOCHS))

    chosen = describe(kind, k, dtype)
    refs = {chosen: inet(kind, k if kind == 'topk' else None)}
    refs.setdefault("'class' (hard)", inet('class', None))
    refs.setdefault(describe('topk', DEFAULT_K, dtype), inet('topk', DEFAULT_K))
    ref = ', '.join(f'{v} as {name}' for name, v in refs.items())
    return (f'teacher record: {positions:,} positions x {epochs} epochs x {per_view} B per '
            f'view ({chosen}, {num_classes} classes) = {human_bytes(total)}; for reference, '
            f'ImageNet-1k ({IMAGENET_IMAGES:,} images) x {IMAGENET_EPOCHS} epochs: {ref}')


def describe(kind, k, dtype):
    if kind == 'class':
        return "'class' (hard)"
    if kind == 'topk':
        return f'top-{k} {dtype}'
    return f'logits {dtype}'


def default_out(config, data_seed, teacher='teacher'):
    name = osp.splitext(osp.basename(str(config)))[0]
    if teacher != 'teacher':
        name = f'{name}_{teacher}'
    return osp.join('work_dirs', 'records', f'{name}_seed{data_seed}')


class ChunkProgress:
    """This process's chunks: a bar on a terminal (log records written above it), else a
    log line every twentieth of the run's chunks and at the last one."""

    lines = 20

    def __init__(self, logger, mine, done, todo, rank, interactive=None):
        from kdzoo.engine.progress_hook import BarSafeConsole, interactive_console
        self.logger, self.todo, self.count = logger, todo, 0
        self.every = max(1, -(-todo // self.lines))
        self.start = time.monotonic()
        self.interactive = interactive_console() if interactive is None else interactive
        self.bar = self.console = None
        if self.interactive and todo:
            from tqdm import tqdm
            self.console = BarSafeConsole([logger, logging.getLogger()])
            self.bar = self.console.add(tqdm(total=mine, initial=done, unit='chunk',
                                             desc=f'record (rank {rank})', leave=False,
                                             dynamic_ncols=True))

    def step(self, epoch, chunk, views):
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix(epoch=epoch, refresh=False)
            self.bar.update(1)
        elif self.count % self.every == 0 or self.count == self.todo:
            elapsed = time.monotonic() - self.start
            eta = elapsed / self.count * (self.todo - self.count)
            self.logger.info(f'Record epoch {epoch} chunk {chunk} ({views} views) '
                             f'[{self.count}/{self.todo} of this run]  '
                             f'{self.count / elapsed:.2f} chunks/s  eta: {eta:.0f} s')

    def close(self):
        if self.console is not None:
            self.console.close_all()


def chunk_keys(order, data_seed, epoch, positions):
    """Replay keys (data seed, epoch, position, sample id) of ``positions``."""
    return [(data_seed, epoch, int(p), int(order.ids[p])) for p in positions]


def chunk_batches(record, work, order_of, data_seed, batch_size):
    """The batches of keys of the (epoch, chunk) ``work`` items, in order, never crossing
    a chunk, and for each batch the (epoch, chunk) it belongs to and whether it ends it."""
    batches, owners = [], []
    for epoch, chunk in work:
        keys = chunk_keys(order_of(epoch), data_seed, epoch, record.chunk_positions(chunk))
        for start in range(0, len(keys), batch_size):
            batches.append(keys[start:start + batch_size])
            owners.append((epoch, chunk, start + batch_size >= len(keys)))
    return batches, owners


def _unwrap(model):
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def _remove_stale_temporaries(path):
    """Temporary files of writes a killed process left (rank 0, before any writer)."""
    from kdzoo.records.teacher_record import DONE, is_partial_write
    for folder in (path, osp.join(path, DONE)):
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            if is_partial_write(name):
                try:
                    os.remove(osp.join(folder, name))
                except FileNotFoundError:
                    pass


def record_val(model, loader, precision='fp32', network='teacher'):
    """{sample index: (image path, rank of the true class)} of this process's share of
    the validation loader (DefaultSampler, deterministic pipeline), for the teacher of
    source network ``network`` (on the student's images, as in validation)."""
    from kdzoo.numerics import autocast_for
    out = {}
    device = next(model.parameters()).device
    with torch.no_grad(), autocast_for(precision, device):
        for data in loader:
            data = model.data_preprocessor(data, training=False)
            logits = model.run_teacher(model.teacher_module(network), data['inputs'])
            samples = data['data_samples']
            labels = torch.cat([s.gt_label for s in samples]).to(logits.device)
            ranks = (logits > logits.gather(1, labels[:, None])).sum(1).tolist()
            for s, r in zip(samples, ranks):
                out[int(s.metainfo['sample_idx'])] = (s.metainfo['img_path'], int(r))
    return out


def record_teacher(config, out=None, epochs=None, kind=None, k=DEFAULT_K, dtype='float16',
                   chunk=DEFAULT_CHUNK, cfg_options=None, launcher='none', batch_size=None,
                   num_workers=None, max_chunks=None, interactive=None, teacher='teacher'):
    """Record the teacher of ``config`` on every replayed training view of its schedule.

    Args:
        config: a config file, a shipped config's name or a Config.
        out: the record folder (default ``work_dirs/records/<config name>_seed<data
            seed>``); an existing record there is resumed if its settings are the same and
            refused otherwise.
        epochs: epochs to record (default ``train_cfg.max_epochs``; fewer are warned about).
        kind: 'class', 'topk' or 'logits' (default 'logits' up to 100 classes, else 'topk').
        k, dtype, chunk: top-k size, stored float type, positions per chunk (even).
        cfg_options: ``--cfg-options``-style overrides.
        launcher: 'none', 'pytorch' or 'slurm' (several processes share the chunks).
        batch_size, num_workers: of the recording loader (default: the training loader's).
        max_chunks: stop after this many new chunks in this process (for tests and
            time-limited jobs; run again to continue). The record is then not complete.
        interactive: progress bar (True) or log lines (False); None asks the console.
        teacher: the teacher to record: 'teacher' (``model.teacher``) or a name of
            ``model.teachers``; a teacher with a view is recorded on its view.

    Prints one line with the record's size before any work. Returns a dict: ``out``,
    ``header`` (the record's), ``written`` (the (epoch, chunk) pairs this process wrote),
    ``skipped`` (this process's chunks already done), ``complete`` and ``seconds``.
    """
    import kdzoo  # noqa: F401  (registries, compatibility fixes)
    from mmengine import dist as mdist

    from kdzoo.apis.configs import find_config
    from kdzoo.apis.data import missing_data
    from kdzoo.compat import init_distributed
    from kdzoo.datasets.replay import EpochOrder
    from kdzoo.engine import Runner
    from kdzoo.models.teachers import network_of, teacher_input
    from kdzoo.numerics import autocast_for, flush_denormals
    from kdzoo.records import RecordError, TeacherRecord, run_fingerprint
    from kdzoo.records.teacher_record import DTYPES, OUTPUT_KINDS, check_output

    from .model import load_config

    if isinstance(config, str) and not osp.isfile(config):
        config = find_config(config)
    cfg = load_config(config, cfg_options)
    name = cfg.filename if getattr(cfg, 'filename', None) else 'config'
    # ----- settings, checked before anything is built ------------------------------------
    if kind is not None and kind not in OUTPUT_KINDS:
        raise ConfigError(f'kind must be one of {OUTPUT_KINDS}, got {kind!r}')
    if dtype not in DTYPES:
        raise ConfigError(f'dtype must be one of {DTYPES}, got {dtype!r}')
    if not isinstance(chunk, int) or chunk < 2 or chunk % 2:
        raise ConfigError(f'chunk must be an even number >= 2 (whole pairs), got {chunk!r}')
    check_record_config(cfg, teacher)
    if cfg.model.get('teacher_outputs') is not None or cfg.model.get('verify_every'):
        # The teacher is recorded from its network: no record stands in for it here.
        cfg.model.teacher_outputs, cfg.model.verify_every = None, 0
    schedule = schedule_epochs(cfg)
    if epochs is None:
        if schedule is None:
            raise ConfigError('train_cfg has no max_epochs (an iteration-based schedule): '
                              'give the epochs to record (--epochs)')
        epochs = schedule
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f'epochs must be a positive integer, got {epochs!r}')
    loader_cfg = cfg.train_dataloader
    batch_size = batch_size or loader_cfg.get('batch_size')
    mixes = bool(preprocessor_key(cfg)[1].get('batch_augments'))
    if not isinstance(batch_size, int) or batch_size < 1 or (mixes and batch_size % 2):
        raise ConfigError(f'batch size {batch_size!r}: use a positive even number (pairs '
                          'mix with each other and stay in one batch)')
    if max_chunks is not None and max_chunks < 0:
        raise ConfigError(f'max_chunks must be >= 0, got {max_chunks}')
    try:
        flush_denormals(cfg)  # subnormal floats flushed on the CPU: see kdzoo/numerics.py
    except ValueError as e:
        raise ConfigError(str(e)) from None
    missing = missing_data(cfg, ('train_dataloader', 'val_dataloader'))
    if missing:
        raise ConfigError('\n'.join(missing))

    # ----- the run as the Runner prepares it ----------------------------------------------
    distributed = init_distributed(launcher)
    rank, world = mdist.get_dist_info()
    seed_cfg = loader_cfg.sampler.get('data_seed')
    data_seed = int(seed_cfg if seed_cfg is not None else cfg.randomness.seed)
    out = out or default_out(name, data_seed, teacher)
    cfg.launcher = launcher
    cfg.work_dir = osp.join(out, 'logs')
    cfg.experiment_name = f'record_teacher_{os.getpid()}_{time.time_ns()}'
    runner = Runner.from_cfg(cfg)
    logger = runner.logger
    prepared = runner.cfg  # prepare_config's result, as the run reading the record has it
    model = _unwrap(runner.model)
    loader = runner.train_dataloader
    dataset, sampler = loader.dataset, loader.sampler
    if sampler.data_seed != data_seed:
        raise ConfigError(f'the sampler draws with data seed {sampler.data_seed}, the '
                          f'config says {data_seed}')
    source = 'teacher' if teacher == 'teacher' else network_of(teacher)
    network = model.teacher_module(source)
    num_classes = int(network.num_classes())
    kind = kind or default_kind(num_classes)
    k = k if kind == 'topk' else None
    try:
        check_output(kind, k, dtype, num_classes)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    positions = len(EpochOrder(len(dataset), data_seed, 0, sampler.shuffle))
    if rank == 0:
        print(size_line(positions, epochs, kind, k, dtype, num_classes), flush=True)
    if schedule is not None and epochs < schedule:
        logger.warning(f'recording {epochs} of the schedule\'s {schedule} epochs '
                       f'(train_cfg.max_epochs): a run reading this record stops at epoch '
                       f'{epochs + 1}')
    fingerprint = run_fingerprint(prepared, dataset, dict(kind=kind, k=k, dtype=dtype),
                                  source)

    # ----- the record: made by rank 0, opened by the others ------------------------------
    def create():
        return TeacherRecord.create(out, fingerprint, epochs, positions, num_classes,
                                    kind=kind, k=k, dtype=dtype, chunk=chunk, rank=rank)

    status = [None]
    if rank == 0:
        try:
            record = create()
            _remove_stale_temporaries(out)
            record.make_files()
        except (RecordError, ValueError, OSError) as e:
            status = [str(e)]
    if distributed:
        mdist.broadcast_object_list(status)
    if status[0] is not None:
        raise ConfigError(status[0])
    if rank != 0:
        record = create()
    mine = record.todo(rank=rank, world_size=world)
    ours = [(e, c) for i, (e, c) in enumerate((e, c) for e in range(epochs)
                                               for c in range(record.num_chunks))
            if i % world == rank]
    work = mine if max_chunks is None else mine[:max_chunks]
    seen = ('its own view ' + repr(network.view_spec) if network.view_spec is not None
            else "the student's batch")
    logger.info(f'rank {rank}/{world}: {len(ours)} chunks of {chunk} positions of {source} '
                f'on {seen}, {len(ours) - len(mine)} done before, {len(work)} to write now '
                f'-> {out}')

    # ----- the chunks ---------------------------------------------------------------------
    orders = {}

    def order_of(epoch):
        if epoch not in orders:
            orders.clear()
            orders[epoch] = EpochOrder(len(dataset), data_seed, epoch, sampler.shuffle)
        return orders[epoch]

    batches, owners = chunk_batches(record, work, order_of, data_seed, batch_size)
    workers = loader_cfg.get('num_workers', 0) if num_workers is None else num_workers
    records_loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, num_workers=workers, collate_fn=loader.collate_fn,
        worker_init_fn=loader.worker_init_fn if workers else None)
    model.eval()
    progress = ChunkProgress(logger, len(ours), len(ours) - len(mine), len(work), rank,
                             interactive)
    written, parts, start = [], [], time.perf_counter()
    current_epoch = None
    try:
        # The teacher at the run's precision (bf16 autocast or float32), as online.
        device = next(model.parameters()).device
        with torch.no_grad(), autocast_for(prepared.env_cfg.precision, device):
            for data, (epoch, index, last) in zip(records_loader, owners):
                if epoch != current_epoch:  # one epoch's arrays mapped at a time
                    record._maps.clear()
                    current_epoch = epoch
                data = model.data_preprocessor(data, training=True)
                inputs = teacher_input(source, network, data['inputs'], data.get('views'))
                parts.append(model.run_teacher(network, inputs).float().cpu())
                if last:
                    logits = torch.cat(parts)
                    parts = []
                    record.write_chunk(epoch, index, logits)
                    written.append((epoch, index))
                    progress.step(epoch, index, len(logits))
    finally:
        progress.close()
        record._maps.clear()
    seconds = time.perf_counter() - start
    views = sum(len(record.chunk_positions(c)) for _, c in written)
    logger.info(f'rank {rank}: wrote {len(written)} chunks ({views} views) in {seconds:.1f} s'
                + (f' ({views / seconds:.1f} views/s)' if views else ''))

    # ----- the validation set: the rank of the true class --------------------------------
    val_cfg = prepared.get('val_dataloader')
    have_val = osp.isfile(osp.join(out, 'val.json'))
    if val_cfg and not have_val and max_chunks is None:
        val_loader = runner.build_dataloader(val_cfg, seed=runner.seed)
        mine_val = record_val(model, val_loader, prepared.env_cfg.precision, source)
        gathered = mdist.all_gather_object(mine_val) if distributed else [mine_val]
        if rank == 0:
            merged = {}
            for part in gathered:
                merged.update(part)
            items = [merged[i] for i in sorted(merged)]
            record.write_val([p for p, _ in items], [r for _, r in items])
            top1 = np.mean([r == 0 for _, r in items]) * 100 if items else float('nan')
            logger.info(f'validation: {len(items)} images, teacher top-1 {top1:.2f}')
    elif not val_cfg:
        logger.info('no val_dataloader: the teacher\'s validation ranks are not recorded')

    # ----- rank 0 marks the record complete once every chunk is there --------------------
    if distributed:
        mdist.barrier()
    complete = False
    if rank == 0:
        left = record.missing()
        if left:
            logger.warning(f'{len(left)} chunks are not written yet (e.g. (epoch, chunk) '
                           f'{left[:3]}); run again to finish {out}')
        else:
            record.finish()
            complete = True
            logger.info(f'{out} is complete: {epochs} epochs x {positions} positions')
    if distributed:
        flag = [complete]
        mdist.broadcast_object_list(flag)
        complete = flag[0]
    return dict(out=out, header=dict(record.header), written=written,
                skipped=len(ours) - len(mine), complete=complete, seconds=seconds)
