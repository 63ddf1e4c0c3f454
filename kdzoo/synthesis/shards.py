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
import glob
import hashlib
import json
import math
import os
import os.path as osp
import shutil

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


def run_shards(synthesizer, teacher, writer, labels, batch_size, rank=0, world_size=1,
               max_shards=None, progress=False):
    """Synthesise and write the shards of ``rank`` that have no manifest yet. Stops after
    ``max_shards`` new shards if given. Returns the indices of the shards written."""
    writer.prepare()
    mine = shards_of_rank(num_shards(len(labels), batch_size), rank, world_size)
    pending = [s for s in mine if not writer.is_done(s)]
    for shard in set(mine) - set(pending):
        writer.discard_partial(shard)
    todo = pending if max_shards is None else pending[:max_shards]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(mine), initial=len(mine) - len(pending), unit='shard',
                   desc=f'shards (rank {rank})', dynamic_ncols=True)
    written = []
    try:
        for shard in todo:
            writer.clear(shard)
            indices = list(range(shard * batch_size,
                                 min((shard + 1) * batch_size, len(labels))))
            shard_labels = labels[indices]
            result = synthesizer.synthesize(teacher, shard_labels, batch_index=shard)
            writer.write(shard, indices, shard_labels, result)
            written.append(shard)
            if bar is not None:
                bar.set_postfix(ce=f"{result.losses['ce'].mean().item():.3f}")
                bar.update(1)
    except BaseException:
        if not written:
            writer.discard_empty()
        raise
    finally:
        if bar is not None:
            bar.close()
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
