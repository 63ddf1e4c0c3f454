"""Writing a synthetic data set in shards that processes can split, resume and verify.

The DF-DearKD set (Chen et al., "DearKD", CVPR 2022, section 4) is synthesised one batch
at a time with DeepInversion (Yin et al., CVPR 2020); each batch is a *shard* with a
global index. Shard s belongs to the process with ``s % world_size == rank``, so any number
of processes or nodes share the work without overlap or coordination. A shard's images go
to ``OUT/<class>/<shard>_<i>.png`` (the class-folder layout of ImageFolderSubset) through a
temporary folder beside OUT and ``os.replace``; its manifest ``OUT/shard_<shard>.json``
is written last, the same way, and is the only sign that the shard is complete. A restart
skips shards with a manifest and redoes the others after deleting their stale files.
"""
import datetime
import glob
import hashlib
import json
import logging
import math
import os
import os.path as osp
import shutil
import time

import numpy as np
import torch
from PIL import Image

MANIFEST = 'manifest.json'


def balanced_labels(num_images, num_classes, per_class_in_batch=1):
    """Labels of the ``num_images`` images: runs of ``per_class_in_batch`` consecutive
    images share a class and the classes cycle, so every class gets the same number of
    images (up to one run) and every batch holds several images of each of its classes."""
    if num_images < 1 or num_classes < 1 or per_class_in_batch < 1:
        raise ValueError('num_images, num_classes and per_class_in_batch must be positive')
    return (torch.arange(num_images) // per_class_in_batch) % num_classes


def num_shards(num_images, batch_size):
    return math.ceil(num_images / batch_size)


def shards_of_rank(total, rank, world_size):
    if not 0 <= rank < world_size:
        raise ValueError(f'rank {rank} is not in [0, {world_size})')
    return [s for s in range(total) if s % world_size == rank]


def settings_digest(settings):
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _atomic_json(obj, path, tmp_dir):
    tmp = osp.join(tmp_dir, osp.basename(path) + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ShardWriter:
    """Files of one synthetic data set under ``out`` for the class names ``classes``
    (sorted, so that the class-folder loader gives folder i label i). ``settings`` are
    recorded with every shard; a resumed run with other settings is refused rather than
    mixed into the same folder."""

    def __init__(self, out, classes, settings):
        classes = list(classes)
        if classes != sorted(set(classes)):
            raise ValueError('class names must be unique and sorted, so that a class-folder '
                             'dataset gives classes[i] label i')
        self.out = osp.abspath(out)
        self.classes = classes
        self.settings = settings
        self.digest = settings_digest(settings)
        # Beside OUT, not inside: every folder inside OUT would be read as a class.
        self.tmp_root = self.out.rstrip(os.sep) + '.partial'

    def prepare(self):
        # Every class folder exists from the start, even before it holds an image, so the
        # folder-to-label mapping never shifts.
        self._made = [d for d in [self.out, *(osp.join(self.out, n) for n in self.classes),
                                  self.tmp_root] if not osp.isdir(d)]
        for name in self.classes:
            os.makedirs(osp.join(self.out, name), exist_ok=True)
        os.makedirs(self.tmp_root, exist_ok=True)

    def discard_empty(self):
        """Remove the folders that :meth:`prepare` made and that are still empty (a run
        that failed before writing an image leaves nothing behind; folders another process
        has written to stay)."""
        for path in reversed(getattr(self, '_made', [])):
            try:
                os.rmdir(path)
            except OSError:
                pass  # not empty, or gone already

    def finish(self):
        """Remove the temporary folder once no process writes there any more."""
        try:
            os.rmdir(self.tmp_root)
        except OSError:
            pass  # absent, or not empty: a shard is being written or was interrupted

    def manifest_path(self, shard):
        return osp.join(self.out, f'shard_{shard:05d}.json')

    def is_done(self, shard):
        path = self.manifest_path(shard)
        if not osp.isfile(path):
            return False
        with open(path) as f:
            digest = json.load(f).get('settings_digest')
        if digest != self.digest:
            raise RuntimeError(f'{path} was made with other settings (digest {digest}, now '
                               f'{self.digest}); use another output folder or delete it')
        return True

    def clear(self, shard):
        """Delete what an interrupted attempt at ``shard`` may have left."""
        for path in glob.glob(osp.join(self.out, '*', f'{shard:05d}_*.png')):
            os.remove(path)
        shutil.rmtree(osp.join(self.tmp_root, f'shard_{shard:05d}'), ignore_errors=True)

    def discard_partial(self, shard):
        """Delete the temporary folder of a finished ``shard``: a process killed after
        the shard's manifest and before its cleanup leaves it, and :meth:`finish` would
        then keep the temporary root forever."""
        shutil.rmtree(osp.join(self.tmp_root, f'shard_{shard:05d}'), ignore_errors=True)

    def write(self, shard, indices, labels, result):
        """Store the :class:`SynthesisResult` of ``shard`` (global image ``indices``)."""
        tmp = osp.join(self.tmp_root, f'shard_{shard:05d}')
        os.makedirs(tmp, exist_ok=True)
        entries, moves = [], []
        images = result.images.permute(0, 2, 3, 1).numpy()
        for i, (index, label) in enumerate(zip(indices, labels.tolist())):
            name = f'{shard:05d}_{i:03d}.png'
            Image.fromarray(np.ascontiguousarray(images[i])).save(osp.join(tmp, name))
            rel = f'{self.classes[label]}/{name}'
            moves.append((osp.join(tmp, name), osp.join(self.out, rel)))
            entry = dict(file=rel, index=int(index), label=int(label))
            for key, values in result.losses.items():
                v = values[i].item()
                entry[key] = int(v) if key == 'prediction' else float(v)
            entries.append(entry)
        for src, dst in moves:
            os.replace(src, dst)
        manifest = dict(shard=shard, settings_digest=self.digest, images=entries)
        _atomic_json(manifest, self.manifest_path(shard), tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        return manifest


def _eta(seconds):
    return str(datetime.timedelta(seconds=int(seconds)))


class ShardProgress:
    """What :func:`run_shards` shows while it works, fed by the synthesizer's ``progress``
    callback.

    On a terminal (stdout and stderr both): a bar over this process's shards (with the
    run's ETA) and below it a bar over the iterations of the current shard, which carries
    the shard's ETA and the latest losses (the objective and its terms), read from the
    device every ``refresh_s`` seconds and at the end of every stage. Log records are
    written above the bars (:class:`kdzoo.engine.progress_hook.BarSafeConsole`), and both
    bars clear their lines when done. Elsewhere (CI, a log file, ``| tee``): no bars, a log
    line every ``1 / lines_per_shard`` of a shard's iterations instead. Each finished
    shard gets a log line in both cases.

    Args:
        synthesizer: its ``stages`` (size, iterations) give the iterations of a shard.
        mine, done, todo: this process's shards, how many of them were finished before,
            and the shards this run will synthesise.
        rank: the process, named in the bar.
        logger: where the lines go; None means mmengine's current logger.
        interactive: bars (True) or lines (False); None asks the console.
    """

    #: Seconds between two readings of the losses on a terminal (each waits for the device).
    refresh_s = 0.5
    #: Plain lines per shard, evenly spaced over its iterations, when there are no bars.
    lines_per_shard = 10

    def __init__(self, synthesizer, mine, done, todo, rank=0, logger=None, interactive=None):
        from kdzoo.engine.progress_hook import BarSafeConsole, interactive_console
        if logger is None:
            from mmengine.logging import MMLogger
            logger = MMLogger.get_current_instance()
        self.logger = logger
        self.stages = [(s['size'], s['iterations']) for s in getattr(synthesizer, 'stages', [])]
        self.iterations = sum(n for _, n in self.stages)
        self.todo, self.finished = len(todo), 0
        self.every = max(1, math.ceil(self.iterations / self.lines_per_shard))
        self.interactive = interactive_console() if interactive is None else interactive
        self.outer = self.inner = None
        self.console = BarSafeConsole([logger, logging.getLogger()]) \
            if self.interactive else None
        self.start = time.monotonic()
        if self.interactive:
            from tqdm import tqdm
            self._tqdm = tqdm
            self.outer = self.console.add(tqdm(
                total=len(mine), initial=done, unit='shard', desc=f'shards (rank {rank})',
                leave=False, dynamic_ncols=True, position=0))

    def start_shard(self, shard, images):
        self.shard, self.images, self.count = shard, images, 0
        self.shard_start = self._read_at = time.monotonic()
        self._stage = None
        if self.interactive:
            self.inner = self.console.add(self._tqdm(
                total=self.iterations or None, unit='it', desc=f'shard {shard}',
                leave=False, dynamic_ncols=True, position=1,
                mininterval=min(self.refresh_s, 0.1)))

    def __call__(self, stage, iteration, losses):
        """The synthesizer's ``progress`` callback (see
        :meth:`DeepInversionSynthesizer.synthesize`)."""
        self.count += 1
        size = self.stages[stage][0] if stage < len(self.stages) else None
        stage_end = stage < len(self.stages) and iteration == self.stages[stage][1]
        if self.interactive:
            bar = self.inner
            if stage != self._stage:
                self._stage = stage
                bar.set_description(f'shard {self.shard} {size}px', refresh=False)
            now = time.monotonic()
            read = stage_end or now - self._read_at >= self.refresh_s
            if read:
                self._read_at = now
                bar.set_postfix(self._values(losses), refresh=False)
            bar.update(1)
            if stage_end:
                bar.refresh()
        elif self.count % self.every == 0 or self.count == self.iterations:
            elapsed = time.monotonic() - self.start
            done = self.finished * self.iterations + self.count
            left = self.todo * self.iterations - done
            terms = '  '.join(f'{k}: {v}' for k, v in self._values(losses).items())
            self.logger.info(
                f'Synthesis shard {self.shard} [{self.count}/{self.iterations}] {size}px  '
                f'eta: {_eta(elapsed / done * left)}  {terms}')

    @staticmethod
    def _values(losses):
        return {('div' if k == 'diversity' else k): f'{float(v):#.4g}'
                for k, v in losses.items()}

    def end_shard(self, result):
        self.finished += 1
        seconds = time.monotonic() - self.shard_start
        if self.inner is not None:
            self.inner.close()
            self.console.remove(self.inner)
            self.inner = None
        losses = result.losses
        names = (('total', 'loss'), ('ce', 'ce'), ('prior', 'prior'), ('bn', 'bn'),
                 ('diversity', 'div'), ('target_prob', 'target_prob'))
        terms = '  '.join(f'{name}: {losses[key].float().mean().item():#.4g}'
                          for key, name in names if key in losses)
        elapsed = time.monotonic() - self.start
        left = _eta(elapsed / self.finished * (self.todo - self.finished))
        self.logger.info(f'Synthesis shard {self.shard} done ({self.images} images, '
                         f'{self.finished}/{self.todo} of this run) in {seconds:.1f} s  '
                         f'eta: {left}  {terms}')
        if self.outer is not None:
            self.outer.set_postfix(ce=f"{losses['ce'].mean().item():.3f}", refresh=False)
            self.outer.update(1)

    def close(self):
        if self.console is not None:
            self.console.close_all()


def run_shards(synthesizer, teacher, writer, labels, batch_size, rank=0, world_size=1,
               max_shards=None, progress=False, logger=None):
    """Synthesise and write the shards of ``rank`` that have no manifest yet. Stops after
    ``max_shards`` new shards if given. Returns the indices of the shards written.

    ``progress``: show the shards and the iterations within each (:class:`ShardProgress`;
    its lines go to ``logger``, by default mmengine's current logger)."""
    writer.prepare()
    mine = shards_of_rank(num_shards(len(labels), batch_size), rank, world_size)
    pending = [s for s in mine if not writer.is_done(s)]
    for shard in set(mine) - set(pending):
        writer.discard_partial(shard)
    todo = pending if max_shards is None else pending[:max_shards]
    shown = None
    if progress:
        shown = ShardProgress(synthesizer, mine, len(mine) - len(pending), todo, rank, logger)
    written = []
    try:
        for shard in todo:
            writer.clear(shard)
            indices = list(range(shard * batch_size,
                                 min((shard + 1) * batch_size, len(labels))))
            shard_labels = labels[indices]
            if shown is None:
                result = synthesizer.synthesize(teacher, shard_labels, batch_index=shard)
            else:
                shown.start_shard(shard, len(indices))
                result = synthesizer.synthesize(teacher, shard_labels, batch_index=shard,
                                                progress=shown)
            writer.write(shard, indices, shard_labels, result)
            written.append(shard)
            if shown is not None:
                shown.end_shard(result)
    except BaseException:
        if not written:
            writer.discard_empty()
        raise
    finally:
        if shown is not None:
            shown.close()
    return written


def merge_manifests(writer, total_shards, header):
    """Write ``OUT/manifest.json``: ``header`` plus the images of all shards, in order.
    Raises if a shard is not complete yet."""
    missing = [s for s in range(total_shards) if not writer.is_done(s)]
    if missing:
        raise RuntimeError(f'{len(missing)} shard(s) not finished yet (first: {missing[:5]}); '
                           'run the synthesis again to complete them')
    images = []
    for s in range(total_shards):
        with open(writer.manifest_path(s)) as f:
            images.extend(json.load(f)['images'])
    manifest = dict(header, settings_digest=writer.digest, num_shards=total_shards,
                    num_images=len(images), images=images)
    os.makedirs(writer.tmp_root, exist_ok=True)
    _atomic_json(manifest, osp.join(writer.out, MANIFEST), writer.tmp_root)
    return manifest


def save_grid(writer, manifest, path, per_class=8, max_classes=20, cell=64):
    """A PNG with one row per class (the first ``max_classes``) of up to ``per_class``
    images, each shrunk to at most ``cell`` pixels."""
    rows = {}
    for entry in manifest['images']:
        row = rows.setdefault(entry['label'], [])
        if len(row) < per_class:
            row.append(entry['file'])
    labels = sorted(rows)[:max_classes]
    if not labels:
        return None
    thumbs = [[Image.open(osp.join(writer.out, f)).convert('RGB') for f in rows[k]]
              for k in labels]
    size = min(cell, max(im.width for row in thumbs for im in row))
    grid = Image.new('RGB', (size * per_class, size * len(labels)), (255, 255, 255))
    for r, row in enumerate(thumbs):
        for c, im in enumerate(row):
            grid.paste(im.resize((size, size), Image.BICUBIC), (c * size, r * size))
    tmp = osp.join(writer.tmp_root, osp.basename(path) + '.tmp.png')
    os.makedirs(writer.tmp_root, exist_ok=True)
    grid.save(tmp)
    os.replace(tmp, path)
    return path
