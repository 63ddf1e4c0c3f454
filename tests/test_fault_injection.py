"""Atomic checkpoints and resumable runs: the atomic writes on their own, the pointer and
the order of deletion, the latest complete checkpoint, a checkpoint or pointer write that
dies half-way inside kdzoo's real Runner (always inside the write, unlike the kills), and
tools/fault_injection.py's runs under real SIGKILLs (a few kills each; the checks hold
wherever the kills land)."""
import os
import os.path as osp
import random
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger

from conftest import load_tool, save_tiny_teacher, tiny_resnet
from kdzoo.engine import AtomicCheckpointHook
from kdzoo.engine import atomic_checkpoint as atomic
from kdzoo.engine import checkpoint_hook as hook_module
from kdzoo.engine.fault_injection import MAX_STEPS_PER_LIFE, KillPlan
from kdzoo.models.checkpoint import read_checkpoint
from kdzoo.registry import MODELS


def save(path, value=0.0):
    torch.save({'meta': {'step': value}, 'w': torch.full((64,), value)}, path)
    return str(path)


def test_interrupted_write_leaves_the_old_file_and_no_partial(tmp_path):
    path = save(tmp_path / 'epoch_1.pth', 1.0)
    before = open(path, 'rb').read()

    def dies_halfway(tmp):
        with open(tmp, 'wb') as f:
            f.write(before[:len(before) // 2])
        raise KeyboardInterrupt  # any exception between the temp file and the rename

    with pytest.raises(KeyboardInterrupt):
        atomic.save_atomic(dies_halfway, path)
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['epoch_1.pth']

    def disk_full(tmp):
        with open(tmp, 'wb') as f:
            f.write(b'PK')
        raise OSError('No space left on device')

    with pytest.raises(OSError, match='No space'):
        atomic.save_atomic(disk_full, str(tmp_path / 'epoch_2.pth'))
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no partial epoch_2.pth, no temp
    atomic.save_atomic(lambda tmp: save(tmp, 2.0), str(tmp_path / 'epoch_2.pth'))
    assert read_checkpoint(str(tmp_path / 'epoch_2.pth'))['meta'] == {'step': 2.0}
    atomic.write_text_atomic(str(tmp_path / 'last_checkpoint'), 'x/epoch_2.pth')
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth', 'epoch_2.pth', 'last_checkpoint']


def test_temp_files_are_not_checkpoints_and_are_cleaned(tmp_path):
    save(tmp_path / 'epoch_1.pth', 1.0)
    partial = atomic.partial_path(str(tmp_path / 'epoch_2.pth'))
    with open(partial, 'wb') as f:
        f.write(b'PK\x03\x04 cut short')
    assert osp.basename(partial).startswith('.epoch_2.pth.') and partial.endswith('.tmp')
    assert not partial.endswith('.pth') and atomic.is_partial(partial)
    atomic.write_text_atomic(str(tmp_path / 'last_checkpoint'), str(tmp_path / 'epoch_1.pth'))
    assert atomic.latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_1.pth')
    # only the names the atomic writes use go: other hidden or .tmp files stay
    for name in ('notes.tmp', '.hidden', '.last_checkpoint.zz.tmp'):
        (tmp_path / name).write_text('keep')
    pointer_partial = atomic.partial_path(str(tmp_path / 'last_checkpoint'))
    open(pointer_partial, 'w').close()
    removed = atomic.remove_partial_files(str(tmp_path))
    assert removed == sorted([osp.basename(partial), osp.basename(pointer_partial)])
    assert sorted(os.listdir(tmp_path)) == ['.hidden', '.last_checkpoint.zz.tmp',
                                            'epoch_1.pth', 'last_checkpoint', 'notes.tmp']


def test_latest_complete_checkpoint_when_the_pointer_is_stale(tmp_path):
    work = str(tmp_path)
    assert atomic.latest_checkpoint(work) is None
    for step in (1, 2, 3):
        save(tmp_path / f'epoch_{step}.pth', float(step))
    assert atomic.latest_checkpoint(work) == osp.join(work, 'epoch_3.pth')  # no pointer
    atomic.write_text_atomic(osp.join(work, 'last_checkpoint'), osp.join(work, 'epoch_1.pth'))
    # killed after epoch_3 was in place, before the pointer named it
    assert atomic.latest_checkpoint(work) == osp.join(work, 'epoch_3.pth')
    # a file cut short (written in place by another program) is passed over
    data = open(osp.join(work, 'epoch_3.pth'), 'rb').read()
    with open(osp.join(work, 'epoch_3.pth'), 'wb') as f:
        f.write(data[:len(data) - 30])
    assert atomic.latest_checkpoint(work) == osp.join(work, 'epoch_2.pth')
    # a pointer to a file that is gone; checkpoints of another kind do not count
    os.remove(osp.join(work, 'epoch_1.pth'))
    save(tmp_path / 'iter_900.pth')
    assert atomic.latest_checkpoint(work) == osp.join(work, 'epoch_2.pth')
    # a relative pointer (mmengine writes join(work_dir, name)) from a moved work dir
    atomic.write_text_atomic(osp.join(work, 'last_checkpoint'), 'old/place/epoch_2.pth')
    assert atomic.read_pointer(work) == osp.join(work, 'epoch_2.pth')
    # names that cannot be ordered: the pointer decides
    save(tmp_path / 'best_top1.pth')
    atomic.write_text_atomic(osp.join(work, 'last_checkpoint'), osp.join(work, 'best_top1.pth'))
    assert atomic.latest_checkpoint(work) == osp.join(work, 'best_top1.pth')


def fake_runner(work_dir, name):
    saved = []

    def save_checkpoint(out_dir, filename, *args, meta=None, **kwargs):
        saved.append(filename)
        atomic.save_atomic(lambda tmp: save(tmp, meta['epoch']), osp.join(out_dir, filename))

    return SimpleNamespace(
        work_dir=work_dir, message_hub=MessageHub.get_instance(name), saved=saved,
        logger=MMLogger.get_instance(name, log_level='ERROR'), epoch=0, iter=0,
        save_checkpoint=save_checkpoint, saves_checkpoints_atomically=True)


def test_hook_deletes_the_replaced_checkpoint_only_after_the_pointer(tmp_path, monkeypatch):
    """With max_keep_ckpts=1 mmengine deletes the pointer's checkpoint before saving the
    next one; here a run killed at any point leaves a pointer to a complete file."""
    work = str(tmp_path)
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1)
    runner = fake_runner(work, 'hook_order_a')
    hook.before_train(runner)
    for epoch in (1, 2):
        hook._save_checkpoint_with_step(runner, epoch, dict(epoch=epoch, iter=epoch))
        assert sorted(os.listdir(tmp_path)) == [f'epoch_{epoch}.pth', 'last_checkpoint']
    real = hook_module.write_text_atomic

    def killed(path, text):  # the process dies while writing the pointer
        raise KeyboardInterrupt

    monkeypatch.setattr(hook_module, 'write_text_atomic', killed)
    with pytest.raises(KeyboardInterrupt):
        hook._save_checkpoint_with_step(runner, 3, dict(epoch=3, iter=3))
    monkeypatch.setattr(hook_module, 'write_text_atomic', real)
    assert sorted(os.listdir(tmp_path)) == ['epoch_2.pth', 'epoch_3.pth', 'last_checkpoint']
    assert atomic.read_pointer(work) == osp.join(work, 'epoch_2.pth')
    assert atomic.latest_checkpoint(work) == osp.join(work, 'epoch_3.pth')

    # the resumed run (epoch_3's message hub) removes what the killed one was to delete,
    # and leftovers of killed writes, and nothing else
    resumed = fake_runner(work, 'hook_order_b')
    resumed.message_hub.load_state_dict(read_checkpoint(osp.join(work, 'epoch_3.pth'))
                                        .get('message_hub', runner.message_hub.state_dict()))
    open(atomic.partial_path(osp.join(work, 'epoch_4.pth')), 'wb').close()
    (tmp_path / 'notes.txt').write_text('mine')
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1)
    hook.before_train(resumed)
    assert list(hook.keep_ckpt_ids) == [3]
    assert sorted(os.listdir(tmp_path)) == ['epoch_3.pth', 'last_checkpoint', 'notes.txt']


def test_kill_plans_never_outrun_the_schedule():
    rng = random.Random(0)
    for _ in range(300):
        plan = KillPlan.draw(rng, startup_s=5.0, step_s=0.2)
        progress, t = 0, 0.0
        while not plan.due(t, progress, writing=rng.random() < 0.1):
            t += 0.05
            progress += rng.random() < 0.3
        assert progress + 1 <= MAX_STEPS_PER_LIFE  # one more may land with the kill
    with pytest.raises(ValueError, match='one of'):
        KillPlan('sometime', 1, 0.0)


def test_training_survives_kills(tmp_path, cifar_tiny):
    tool = load_tool('fault_injection')
    from kdzoo.apis.fault_injection import train_under_kills
    assert tool.parse_args(['train', '--kills', '2']).kills == 2
    lines = []
    report = train_under_kills(str(tmp_path), kills=2, seed=1, data_root=cifar_tiny,
                               echo=lines.append)
    assert report.ok, (report.summary(), report.problems, lines)
    assert report.kills == 2 and report.unreadable == 0 and len(lines) == 3
    run = tmp_path / 'run'
    last = read_checkpoint(str(run / f'epoch_{MAX_STEPS_PER_LIFE * 2 + 4}.pth'))
    assert last['meta']['epoch'] == MAX_STEPS_PER_LIFE * 2 + 4
    assert not [n for n in os.listdir(run) if atomic.is_partial(n)]


def test_synthesis_survives_kills(tmp_path):
    from kdzoo.apis.fault_injection import synthesize_under_kills
    report = synthesize_under_kills(str(tmp_path), kills=2, seed=1, echo=lambda line: None)
    assert report.ok, (report.summary(), report.problems)
    assert report.kills == 2 and report.duplicates == 0 and report.missing == 0


def test_finished_shards_lose_their_leftover_temp_folder(tmp_path):
    """A synthesis killed between a shard's manifest and its cleanup left the shard's
    temporary folder; the next run removes it instead of keeping OUT.partial forever."""
    from kdzoo.synthesis import ShardWriter, balanced_labels, run_shards
    checkpoint = save_tiny_teacher(tmp_path / 'teacher.pth')
    teacher = MODELS.build(dict(type='Teacher', model=tiny_resnet(), checkpoint=checkpoint))
    synthesizer = MODELS.build(dict(
        type='DeepInversionSynthesizer', stages=[dict(size=8, iterations=1, jitter=1)],
        mean=[125.3, 123.0, 113.9], std=[51.6, 50.8, 51.3]))
    out = str(tmp_path / 'synth')
    writer = ShardWriter(out, [f'c{i}' for i in range(10)], dict(test='leftover'))
    labels = balanced_labels(4, 10, 2)
    assert run_shards(synthesizer, teacher, writer, labels, 4) == [0]
    os.makedirs(osp.join(writer.tmp_root, 'shard_00000'))
    assert run_shards(synthesizer, teacher, writer, labels, 4) == []
    writer.finish()
    assert not osp.exists(writer.tmp_root)


# ----- a save that dies half-way inside kdzoo's real Runner ---------------------------------
def tiny_run_config(tmp_path, cifar_tiny):
    """tools/train.py's config for 2 epochs of one step each, checkpoint every epoch."""
    from conftest import write_tiny_distill_config
    return write_tiny_distill_config(tmp_path / 'tiny_atomic.py', cifar_tiny, per_class=1,
                                     max_epochs=2)


def files_in(folder):
    return sorted(n for n in os.listdir(folder) if osp.isfile(osp.join(folder, n)))


def test_runner_save_dying_halfway_keeps_the_previous_checkpoint(tmp_path, cifar_tiny,
                                                                 monkeypatch):
    """The disk fills up in the middle of writing epoch_2.pth (mmengine's writer has put
    half the bytes): epoch_1.pth and last_checkpoint are as they were, no partial file is
    left, and --resume continues from epoch 1."""
    from mmengine.fileio.backends.local_backend import LocalBackend
    config, work = tiny_run_config(tmp_path, cifar_tiny), tmp_path / 'work'
    real_put, written = LocalBackend.put, {}

    def put(self, obj, filepath):
        if 'epoch_2.pth' in osp.basename(str(filepath)):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError('No space left on device (planted by the test)')
        real_put(self, obj, filepath)
        written[osp.basename(str(filepath))] = obj

    monkeypatch.setattr(LocalBackend, 'put', put)
    train = load_tool('train')
    with pytest.raises(OSError, match='No space left'):
        train.main([config, '--work-dir', str(work), '--cfg-options',
                    'experiment_name=atomic_dies'])
    monkeypatch.setattr(LocalBackend, 'put', real_put)
    names = files_in(work)
    assert 'epoch_1.pth' in names and 'epoch_2.pth' not in names
    assert not [n for n in os.listdir(work) if atomic.is_partial(n) or n.endswith('.tmp')]
    # epoch_1.pth holds exactly the bytes written for it, and the pointer names it
    [(_, first)] = [(n, b) for n, b in written.items() if 'epoch_1.pth' in n]
    assert (work / 'epoch_1.pth').read_bytes() == first
    assert atomic.read_pointer(str(work)) == str(work / 'epoch_1.pth')
    runner = train.main([config, '--work-dir', str(work), '--resume', '--cfg-options',
                         'experiment_name=atomic_resumed'])
    assert (runner.epoch, runner.iter) == (2, 2)
    assert read_checkpoint(str(work / 'epoch_2.pth'))['meta']['epoch'] == 2


def test_runner_pointer_write_dying_halfway_keeps_the_old_pointer(tmp_path, cifar_tiny,
                                                                  monkeypatch):
    """The process dies half-way through writing last_checkpoint after epoch_2.pth is in
    place: the pointer still names epoch_1.pth whole, and the automatic resume takes the
    complete epoch_2.pth."""
    config, work = tiny_run_config(tmp_path, cifar_tiny), tmp_path / 'work'
    pointer_writes = []

    class Dying:
        """A file that takes half of what is written and then fails."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:len(text) // 2])
            self.f.flush()
            raise OSError('killed while writing the pointer (planted by the test)')

    def dying_open(path, mode='r', *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if 'w' in mode and 'last_checkpoint' in osp.basename(str(path)):
            pointer_writes.append(path)
            if len(pointer_writes) == 2:
                return Dying(f)
        return f

    # Whatever module writes the pointer looks ``open`` up in its own globals first.
    for module in (atomic, hook_module):
        monkeypatch.setattr(module, 'open', dying_open, raising=False)
    with pytest.raises(OSError, match='killed while writing the pointer'):
        load_tool('train').main([config, '--work-dir', str(work), '--cfg-options',
                                 'experiment_name=pointer_dies'])
    assert len(pointer_writes) == 2
    with open(work / 'last_checkpoint') as f:
        assert f.read() == str(work / 'epoch_1.pth')
    assert not [n for n in os.listdir(work) if atomic.is_partial(n) or n.endswith('.tmp')]
    assert atomic.is_complete(str(work / 'epoch_2.pth'))
    assert atomic.latest_checkpoint(str(work)) == str(work / 'epoch_2.pth')


# ----- teacher records: a chunk write that dies half-way, and recording under kills ---------
def test_record_chunk_write_dying_halfway_leaves_it_unmarked(tmp_path, monkeypatch):
    """The process dies after half of a chunk's values are in the array: the chunk has no
    done marker (so the next run writes it again), no temporary file is left, and the
    record resumed from the folder completes with the values of a run that never died."""
    import numpy as np
    from kdzoo.records import RecordError, TeacherRecord
    torch.manual_seed(0)
    logits = torch.randn(8, 10)

    def create():
        return TeacherRecord.create(str(tmp_path), {'run': 'dies'}, 1, 8, 10, kind='logits',
                                    dtype='float32', chunk=4)

    rec = create()
    rec.make_files()
    rec.write_chunk(0, 0, logits[:4])
    real_map = rec._map

    class Dying:
        """An array that takes half of the rows written to it, then fails."""

        def __init__(self, array):
            self.array = array

        def __setitem__(self, index, values):
            rows = np.arange(self.array.shape[0])[index]
            half = len(rows) // 2
            self.array[rows[:half]] = values[:half]
            self.array.flush()
            raise OSError('killed while writing the chunk (planted by the test)')

    monkeypatch.setattr(rec, '_map', lambda *a, **k: Dying(real_map(*a, **k)))
    with pytest.raises(OSError, match='killed while writing the chunk'):
        rec.write_chunk(0, 1, logits[4:])
    monkeypatch.undo()
    assert rec.done(0, 0) and not rec.done(0, 1)
    assert os.listdir(tmp_path / 'done') == ['e0000_c000000']
    with pytest.raises(RecordError, match='not complete'):
        TeacherRecord.open(str(tmp_path))
    resumed = create()
    assert resumed.todo() == [(0, 1)]
    resumed.write_chunk(0, 1, logits[4:])
    resumed.finish()
    assert torch.equal(TeacherRecord.open(str(tmp_path)).logits(0, range(8)), logits)


def test_recording_survives_kills(tmp_path):
    """tools/record_teacher.py killed twice with SIGKILL and run again: no chunk missing
    or marked twice, none changed after it was marked, and every value equal to a record
    made without kills."""
    from kdzoo.apis.fault_injection import record_under_kills
    tool = load_tool('fault_injection')
    assert tool.parse_args(['record']).kills == 5
    lines = []
    report = record_under_kills(str(tmp_path), kills=2, seed=1, echo=lines.append)
    assert report.ok, (report.summary(), report.problems, lines)
    assert report.kills == 2 and report.missing == 0 and report.duplicates == 0
    assert lines[-1] == ('[record] 0 missing chunks, 0 marked twice, 0 changed values '
                         'against the record made without kills'), lines
