"""Training and synthesis under ``kill -9`` (tools/fault_injection.py).

:func:`train_under_kills` runs tools/train.py on a tiny distillation config (a checkpoint
every epoch of one step, so writes are frequent) and kills it again and again; after
every kill every checkpoint must load with ``weights_only=True``, ``last_checkpoint`` must
name a complete checkpoint, and the next ``--resume`` must start from the latest complete
one. :func:`synthesize_under_kills` does the same with tools/synthesize.py: finished
shards never change, and the end result holds every requested image exactly once.
"""
import glob
import hashlib
import json
import os
import os.path as osp
import random
import re
import textwrap
from collections import Counter

import torch
from PIL import Image

from kdzoo.engine.atomic_checkpoint import (POINTER, checkpoint_step, is_partial,
                                            latest_checkpoint, read_pointer)
from kdzoo.engine.fault_injection import (MAX_STEPS_PER_LIFE, FaultReport, inject,
                                          tool_command)
from .configs import find_config
from .data import MINI_CIFAR10, unpack_archive

_RESUMED = re.compile(r'resumed epoch: (\d+), iter: (\d+)')
TINY_STUDENT = dict(arch=None, embed_dim=32, num_heads=2, depth=2, drop_path_rate=0.0)
TINY_TEACHER = dict(type='CifarResNet', depth=8, widths=(8, 16, 32), num_classes=10)


def tiny_teacher(path, seed=0):
    """A randomly initialised CIFAR ResNet-8 saved at ``path`` (what is tested is the
    files, not the accuracy)."""
    from kdzoo.registry import MODELS
    if not osp.isfile(path):
        torch.manual_seed(seed)
        os.makedirs(osp.dirname(path), exist_ok=True)
        torch.save(MODELS.build(TINY_TEACHER).state_dict(), path)
    return path


def _write(path, text):
    with open(path, 'w') as f:
        f.write(textwrap.dedent(text))
    return path


def train_config(root, data_root, max_epochs):
    teacher = tiny_teacher(osp.join(root, 'teacher.pth'))
    model = dict(student=TINY_STUDENT, teacher=dict(model=dict(depth=8, widths=(8, 16, 32)),
                                                   checkpoint=teacher))
    return _write(osp.join(root, 'tiny_train.py'), f'''
        _base_ = [{find_config('deit_ti_distilled_cifar10')!r}]
        model = {model!r}
        train_dataloader = dict(batch_size=10, num_workers=0, persistent_workers=False,
                                dataset=dict(data_root={data_root!r}, per_class=1))
        val_dataloader = dict(batch_size=25, num_workers=0, persistent_workers=False,
                              dataset=dict(data_root={data_root!r}))
        test_dataloader = val_dataloader
        train_cfg = dict(max_epochs={max_epochs}, val_interval={max_epochs + 1})
        default_hooks = dict(logger=dict(interval=1), progress_bar=dict(disable=True),
                             checkpoint=dict(interval=1, max_keep_ckpts=3))
        env_cfg = dict(dist_cfg=dict(backend='gloo'))
    ''')


def _checkpoints(work_dir):
    return sorted(e.path for e in os.scandir(work_dir)
                  if e.is_file() and e.name.endswith('.pth')) if osp.isdir(work_dir) else []


def _entries(folder, keep=lambda name: True):
    """``{name: (inode, change time)}`` of ``folder``'s entries: a file made again under
    the same name is another file."""
    if not osp.isdir(folder):
        return {}
    found = {}
    for e in os.scandir(folder):
        if keep(e.name):
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:  # removed meanwhile
                continue
            found[e.name] = (st.st_ino, st.st_ctime_ns)
    return found


def _partials(folder):
    return _entries(folder, is_partial)


def train_under_kills(work_dir, kills=20, seed=0, data_root=None, timeout_s=300,
                      echo=print):
    """Train a tiny distiller with tools/train.py, killed ``kills`` times and resumed
    with ``--resume`` each time; returns a :class:`FaultReport`."""
    from kdzoo.models.checkpoint import read_checkpoint
    work_dir = osp.abspath(work_dir)
    root = osp.join(work_dir, 'setup')
    os.makedirs(root, exist_ok=True)
    if data_root is None:
        data_root = unpack_archive(MINI_CIFAR10, osp.join(root, 'cifar10_mini'))
    # One step per epoch; the schedule always outlasts the kills.
    max_epochs = MAX_STEPS_PER_LIFE * kills + 4
    config = train_config(root, data_root, max_epochs)
    run_dir = osp.join(work_dir, 'run')
    report = FaultReport('train')
    state = dict(expected=None)  # (epoch, iter) the next life must resume from

    def progress():
        steps = [checkpoint_step(p) for p in _checkpoints(run_dir)]
        return max((s[1] for s in steps if s), default=0)

    def check(life, log_path, killed):
        with open(log_path) as f:
            resumed = _RESUMED.search(f.read())
        expected = state['expected']
        if resumed and expected is None:
            report.problems.append(f'life {life} resumed although no checkpoint was there')
        elif expected is not None and resumed and tuple(map(int, resumed.groups())) != expected:
            report.problems.append(f'life {life} resumed from epoch/iter {resumed.groups()}, '
                                   f'not from the latest complete checkpoint {expected}')
        elif expected is not None and not resumed and not killed:
            report.problems.append(f'life {life} ran to its end without resuming')
        metas, bad = {}, []
        for path in _checkpoints(run_dir):
            try:
                metas[path] = read_checkpoint(path)['meta']
            except Exception as e:  # noqa: BLE001  (any failure to load is the finding)
                bad.append(f'{osp.basename(path)}: {e}')
        report.unreadable += len(bad)
        report.problems.extend(f'life {life}: unreadable {b}' for b in bad)
        pointed = read_pointer(run_dir)
        if pointed is not None and pointed not in metas:
            report.problems.append(f'life {life}: {POINTER} names {pointed}, which is not '
                                   'a complete checkpoint')
        latest = latest_checkpoint(run_dir)
        now = (metas[latest]['epoch'], metas[latest]['iter']) if latest in metas else None
        if expected is not None and (now is None or now < expected):
            report.problems.append(f'life {life}: the latest complete checkpoint went back '
                                   f'from epoch/iter {expected} to {now}')
        state['expected'] = now
        return (f'{len(metas)} checkpoint(s) load, latest epoch {now[0] if now else "-"}'
                + (f', {len(bad)} UNREADABLE' if bad else ''))

    def life_cmd():
        return tool_command('train', config, '--work-dir', run_dir, '--resume')

    inject(report, kills, random.Random(seed), life_cmd, progress,
           lambda: _partials(run_dir), check, osp.join(work_dir, 'logs'),
           startup_s=8.0, step_s=0.3, timeout_s=timeout_s, echo=echo)
    if report.finished:
        if state['expected'] is None or state['expected'][0] != max_epochs:
            report.problems.append(f'the run ended at {state["expected"]}, not after '
                                   f'{max_epochs} epochs')
        if _partials(run_dir):
            report.problems.append(f'temporary files left: {sorted(_partials(run_dir))}')
    return report


SYNTH_STAGES = [dict(size=8, iterations=1, jitter=1), dict(size=16, iterations=1, jitter=1)]
SHARD = 4  # images per shard; two of each of two classes


def synthesis_config(root, num_images):
    teacher = tiny_teacher(osp.join(root, 'teacher.pth'))
    return _write(osp.join(root, 'tiny_synthesis.py'), f'''
        _base_ = [{find_config('df_dearkd_micro_cifar10')!r}]
        model = dict(teacher=dict(model=dict(depth=8, widths=(8, 16, 32)),
                                  checkpoint={teacher!r}))
        synthesis = dict(num_images={num_images}, batch_size={SHARD}, per_class_in_batch=2,
                         seed=0, synthesizer=dict(stages={SYNTH_STAGES!r}))
    ''')


def _sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def synthesize_under_kills(work_dir, kills=20, seed=0, timeout_s=300, echo=print):
    """Synthesise a tiny set with tools/synthesize.py, killed ``kills`` times and run
    again each time; returns a :class:`FaultReport`."""
    from kdzoo.synthesis import balanced_labels
    work_dir = osp.abspath(work_dir)
    root = osp.join(work_dir, 'setup')
    os.makedirs(root, exist_ok=True)
    shards = MAX_STEPS_PER_LIFE * kills + 4
    num_images = -(-shards * SHARD // 20) * 20  # whole runs of every class
    config = synthesis_config(root, num_images)
    out = osp.join(work_dir, 'synth')
    partial = out + '.partial'
    report = FaultReport('synthesize')
    done = {}  # shard -> (manifest hash, {file: image hash}) once finished

    def manifests():
        return sorted(glob.glob(osp.join(out, 'shard_*.json')))

    def pngs():
        return sorted(osp.relpath(p, out) for p in glob.glob(osp.join(out, '*', '*.png')))

    def check(life, log_path, killed):
        finished = set()
        for path in manifests():
            shard = int(osp.basename(path)[6:11])
            try:
                with open(path) as f:
                    entries = json.load(f)['images']
                files = {e['file']: _sha(osp.join(out, e['file'])) for e in entries}
                for e in entries:
                    Image.open(osp.join(out, e['file'])).verify()
            except Exception as e:  # noqa: BLE001  (any unreadable part is the finding)
                report.problems.append(f'life {life}: shard {shard} is unreadable: {e}')
                continue
            size = min(SHARD, num_images - shard * SHARD)
            if sorted(e['index'] for e in entries) != list(range(shard * SHARD,
                                                                 shard * SHARD + size)):
                report.problems.append(f'life {life}: shard {shard} lists other images')
            state = (_sha(path), files)
            if shard in done and done[shard] != state:
                report.problems.append(f'life {life}: shard {shard} changed after it was '
                                       'finished (done again, not resumed)')
            done[shard] = state
            finished.add(shard)
        stray = [p for p in pngs() if int(p.split('/')[-1][:5]) in finished
                 and p not in done[int(p.split('/')[-1][:5])][1]]
        if stray:
            report.problems.append(f'life {life}: files beside finished shards: {stray[:5]}')
        return f'{len(finished)}/{-(-num_images // SHARD)} shards finished'

    def life_cmd():
        return tool_command('synthesize', config, '--out', out, '--work-dir',
                            osp.join(work_dir, 'work'), '--device', 'cpu')

    inject(report, kills, random.Random(seed), life_cmd, lambda: len(manifests()),
           lambda: _entries(partial), check, osp.join(work_dir, 'logs'),
           startup_s=8.0, step_s=0.1, timeout_s=timeout_s, echo=echo)
    if report.finished:
        _check_final(report, out, num_images, balanced_labels(num_images, 10, 2).tolist(),
                     pngs())
    return report


def _check_final(report, out, num_images, labels, on_disk):
    """The whole set: every index once, every file once, no two equal images, the class
    counts asked for, manifest.json and the files on disk in agreement."""
    path = osp.join(out, 'manifest.json')
    if not osp.isfile(path):
        report.problems.append('manifest.json is missing at the end')
        report.missing = num_images
        return
    with open(path) as f:
        images = json.load(f)['images']
    shards = []
    for path in sorted(glob.glob(osp.join(out, 'shard_*.json'))):
        with open(path) as f:
            shards.extend(json.load(f)['images'])
    if shards != images:
        report.problems.append('manifest.json differs from the shard manifests')
    indices = [e['index'] for e in images]
    files = [e['file'] for e in images]
    hashes = [_sha(osp.join(out, f)) for f in files if osp.isfile(osp.join(out, f))]
    report.missing = len(set(range(num_images)) - set(indices)) + sum(
        not osp.isfile(osp.join(out, f)) for f in files)
    report.duplicates = (len(indices) - len(set(indices)) + len(files) - len(set(files))
                         + len(hashes) - len(set(hashes)) + len(set(on_disk) - set(files)))
    wanted = Counter(labels)
    got = Counter(e['label'] for e in images)
    if got != wanted:
        report.problems.append(f'images per class {dict(got)}, asked for {dict(wanted)}')
    wrong = [e['file'] for e in images if e['label'] != labels[e['index']]]
    if wrong:
        report.problems.append(f'images with another label than asked for: {wrong[:5]}')
    if osp.exists(out + '.partial'):
        report.problems.append(f'{out}.partial is left: {os.listdir(out + ".partial")}')
