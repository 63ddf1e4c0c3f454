"""Training and synthesis under ``kill -9`` (tools/fault_injection.py).

:func:`train_under_kills` runs tools/train.py on a tiny distillation config (a checkpoint
every epoch of one step, so writes are frequent) and kills it again and again; after
every kill every checkpoint must load with ``weights_only=True``, ``last_checkpoint`` must
name a complete checkpoint, and the next ``--resume`` must start from the latest complete
one. :func:`synthesize_under_kills` does the same with tools/synthesize.py: finished
shards never change, and the end result holds every requested image exactly once.
:func:`record_under_kills` does it with tools/record_teacher.py: chunks marked done never
change, none is marked twice, and the end record equals one made without kills.
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


def tiny_distill_config(root, data_root, name, max_epochs, batch_size, per_class, extra=''):
    """A tiny distillation config (tiny seeded teacher and student, gloo) on ``data_root``,
    written as ROOT/NAME.py; ``extra`` lines are appended."""
    teacher = tiny_teacher(osp.join(root, 'teacher.pth'))
    model = dict(student=TINY_STUDENT, teacher=dict(model=dict(depth=8, widths=(8, 16, 32)),
                                                   checkpoint=teacher))
    return _write(osp.join(root, f'{name}.py'), f'''
        _base_ = [{find_config('deit_ti_distilled_cifar10')!r}]
        model = {model!r}
        train_dataloader = dict(batch_size={batch_size}, num_workers=0, persistent_workers=False,
                                dataset=dict(data_root={data_root!r}, per_class={per_class}))
        val_dataloader = dict(batch_size=25, num_workers=0, persistent_workers=False,
                              dataset=dict(data_root={data_root!r}))
        test_dataloader = val_dataloader
        train_cfg = dict(max_epochs={max_epochs}, val_interval={max_epochs + 1})
        env_cfg = dict(dist_cfg=dict(backend='gloo'))
    ''' + extra)


def train_config(root, data_root, max_epochs):
    return tiny_distill_config(root, data_root, 'tiny_train', max_epochs, 10, 1, '''
        default_hooks = dict(logger=dict(interval=1), progress_bar=dict(disable=True),
                             checkpoint=dict(interval=1, max_keep_ckpts=3))
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


RECORD_CHUNK = 4  # positions per chunk: two pairs, so a life writes few of them
RECORD_PER_CLASS = 2  # 20 training images: 20 positions, 5 chunks per epoch


def record_config(root, data_root, epochs):
    return tiny_distill_config(root, data_root, 'tiny_record', epochs, 4, RECORD_PER_CLASS)


def _record_partials(out):
    """Temporary files of unfinished record writes (markers, header, arrays)."""
    from kdzoo.records.teacher_record import is_partial_write
    found = dict(_entries(out, is_partial_write))
    found.update({f'done/{k}': v for k, v in
                  _entries(osp.join(out, 'done'), is_partial_write).items()})
    return found


def _chunk_values(out, marker):
    """The bytes of the rows of the chunk ``marker`` names (e.g. e0003_c000001)."""
    import numpy as np
    epoch, chunk = int(marker[1:5]), int(marker[7:])
    rows = slice(chunk * RECORD_CHUNK, (chunk + 1) * RECORD_CHUNK)
    return b''.join(np.load(path, mmap_mode='r')[rows].tobytes()
                    for path in sorted(glob.glob(osp.join(out, f'epoch_{epoch:04d}.*.npy'))))


def record_under_kills(work_dir, kills=5, seed=0, timeout_s=300, echo=print):
    """Record a tiny teacher with tools/record_teacher.py, killed ``kills`` times and run
    again each time; then compare with a record made without kills. Returns a
    :class:`FaultReport` whose ``missing`` and ``duplicates`` count chunks (missing at the
    end; marked twice), with every changed value among its problems."""
    import subprocess

    from kdzoo.engine.fault_injection import child_env
    work_dir = osp.abspath(work_dir)
    root = osp.join(work_dir, 'setup')
    os.makedirs(root, exist_ok=True)
    data_root = unpack_archive(MINI_CIFAR10, osp.join(root, 'cifar10_mini'))
    per_epoch = -(-10 * RECORD_PER_CLASS // RECORD_CHUNK)
    epochs = -(-(MAX_STEPS_PER_LIFE * kills + 4) // per_epoch)
    total = epochs * per_epoch
    config = record_config(root, data_root, epochs)
    out, reference = osp.join(work_dir, 'record'), osp.join(work_dir, 'reference')
    report = FaultReport('record')

    def cmd(folder):
        return tool_command('record_teacher', config, '--out', folder, '--chunk',
                            RECORD_CHUNK)

    if not osp.isfile(osp.join(reference, 'header.json')) or not json.load(
            open(osp.join(reference, 'header.json'))).get('complete'):
        done = subprocess.run(cmd(reference), env=child_env(), capture_output=True, text=True,
                              timeout=timeout_s)
        if done.returncode != 0:
            report.problems.append(f'the reference record failed: {done.stderr[-2000:]}')
            return report
    marked = {}  # marker -> bytes of its chunk when first seen

    def markers():
        folder = osp.join(out, 'done')
        return sorted(n for n in os.listdir(folder) if not n.startswith('.')) \
            if osp.isdir(folder) else []

    def check(life, log_path, killed):
        with open(log_path) as f:
            twice = f.read().count('written twice')
        report.duplicates += twice
        if twice:
            report.problems.append(f'life {life}: {twice} chunk(s) marked twice')
        now = markers()
        lost = sorted(set(marked) - set(now))
        if lost:
            report.problems.append(f'life {life}: markers gone: {lost[:5]}')
        for name in now:
            values = _chunk_values(out, name)
            if name in marked and marked[name] != values:
                report.problems.append(f'life {life}: chunk {name} changed after it was '
                                       'marked done')
            marked.setdefault(name, values)
        return f'{len(now)}/{total} chunks done'

    inject(report, kills, random.Random(seed), lambda: cmd(out), lambda: len(markers()),
           lambda: _record_partials(out), check, osp.join(work_dir, 'logs'),
           startup_s=8.0, step_s=0.05, timeout_s=timeout_s, echo=echo)
    if report.finished:
        report.missing = total - len(markers())
        changed = 0
        for name in sorted(os.listdir(reference)):
            if name.endswith('.npy'):
                import numpy as np
                a = np.load(osp.join(reference, name))
                b = np.load(osp.join(out, name))
                changed += int((a != b).sum()) if a.shape == b.shape else a.size
        if changed:
            report.problems.append(f'{changed} values differ from the record made without '
                                   'kills')
        with open(osp.join(out, 'header.json')) as f:
            if not json.load(f).get('complete'):
                report.problems.append('the header does not say complete')
        if _record_partials(out):
            report.problems.append(f'temporary files left: {sorted(_record_partials(out))}')
        echo(f'[record] {report.missing} missing chunks, {report.duplicates} marked twice, '
             f'{changed} changed values against the record made without kills')
    return report
