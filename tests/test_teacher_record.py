"""Teacher records (kdzoo/records, kdzoo/apis/record_teacher.py, tools/record_teacher.py):
the on-disk format of the three kinds, a record equal to the teacher on the batches a
Runner-built training loader replays, resuming after a crash, refusals (other settings at
the folder, incomplete and truncated records, configs that cannot be replayed), two gloo
processes writing the same record as one, and the size line of the command."""
import json
import os
import os.path as osp
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch

from conftest import REPO, save_tiny_teacher, write_tiny_distill_config
from kdzoo.apis import ConfigError
from kdzoo.apis.record_teacher import record_teacher
from kdzoo.records import RecordError, TeacherRecord

EPOCHS, CHUNK = 2, 8  # 20 training images: 20 positions, chunks of 8, 8 and 4


@pytest.fixture(scope='module')
def tiny_config(cifar_tiny, tmp_path_factory):
    """A tiny distillation config (ResNet-8 teacher with seeded weights, 20 training
    images, batch 6, mixup/cutmix per pair, 2 epochs) on the shipped CIFAR-10 subset."""
    root = tmp_path_factory.mktemp('record_setup')
    teacher = save_tiny_teacher(root / 'teacher.pth')
    return write_tiny_distill_config(root / 'tiny_record.py', cifar_tiny,
                                     teacher_checkpoint=teacher, per_class=2, batch_size=6,
                                     max_epochs=EPOCHS)


@pytest.fixture(scope='module')
def reference(tiny_config, tmp_path_factory):
    """A complete record made by one process without interruption."""
    out = str(tmp_path_factory.mktemp('records') / 'reference')
    result = record_teacher(tiny_config, out=out, chunk=CHUNK, interactive=False)
    assert result['complete'] and result['skipped'] == 0
    return out


def arrays_of(path):
    """{file name: bytes} of a record's arrays."""
    return {f: open(osp.join(path, f), 'rb').read() for f in sorted(os.listdir(path))
            if f.endswith('.npy')}


# ----- the format ---------------------------------------------------------------------------
@pytest.mark.parametrize('kind', ['class', 'topk', 'logits'])
def test_format_round_trip(tmp_path, kind):
    torch.manual_seed(0)
    positions, classes, k = 10, 12, 3
    logits = [torch.randn(positions, classes) * 3 for _ in range(2)]
    rec = TeacherRecord.create(str(tmp_path), {'x': 1}, 2, positions, classes, kind=kind,
                               k=k, dtype='float16', chunk=4)
    rec.make_files()
    for epoch in range(2):
        for c in range(rec.num_chunks):
            rec.write_chunk(epoch, c, logits[epoch][rec.chunk_positions(c)])
    rec.finish()
    rec = TeacherRecord.open(str(tmp_path))
    for epoch in range(2):
        want = logits[epoch]
        assert torch.equal(rec.classes(epoch, range(positions)), want.argmax(1))
        got = rec.logits(epoch, list(range(positions)))
        if kind == 'class':
            assert got is None
            continue
        if kind == 'logits':
            assert (got - want).abs().le(rec.tolerance(want)).all()
            continue
        # top-k: the teacher's top-k probabilities and the rest's mass, the rest spread
        # evenly over the other classes.
        p, q = want.softmax(1), got.softmax(1)
        top = want.topk(k, 1).indices
        assert torch.equal(got.topk(k, 1).indices.sort(1).values, top.sort(1).values)
        assert torch.allclose(q.gather(1, top), p.gather(1, top), atol=2e-3)
        rest = torch.ones_like(p, dtype=torch.bool).scatter(1, top, False)
        assert torch.allclose(q[rest].view(positions, -1).sum(1),
                              p[rest].view(positions, -1).sum(1), atol=2e-3)
        spread = q[rest].view(positions, -1)
        assert torch.allclose(spread, spread[:, :1].expand_as(spread))


# ----- the record equals the teacher on the replayed training batches ------------------------
def test_record_equals_the_teacher_on_the_runners_training_batches(tiny_config, reference,
                                                                   tmp_path):
    from mmengine.config import Config

    from kdzoo.datasets.replay import replay_keys
    from kdzoo.engine import Runner
    rec = TeacherRecord.open(reference)
    assert (rec.epochs, rec.positions, rec.kind, rec.num_classes) == (EPOCHS, 20, 'logits', 10)
    cfg = Config.fromfile(tiny_config)
    cfg.work_dir = str(tmp_path / 'run')
    cfg.experiment_name = f'replayed_{uuid.uuid4().hex[:8]}'
    runner = Runner.from_cfg(cfg)
    model, loader = runner.model, runner.train_dataloader
    model.eval()
    # The fingerprint a run reading the record computes (its prepared config and dataset).
    from kdzoo.records import run_fingerprint
    assert rec.fingerprint == run_fingerprint(runner.cfg, loader.dataset,
                                              dict(kind='logits', k=None, dtype='float16'))
    seen = {e: [] for e in range(EPOCHS)}
    mixed = 0
    from kdzoo.numerics import autocast_for  # the teacher at the run's precision
    with torch.no_grad(), autocast_for(runner.cfg.env_cfg.precision, 'cpu'):
        for epoch in range(EPOCHS):
            loader.sampler.set_epoch(epoch)
            for data in loader:
                keys = replay_keys(data['data_samples'])
                raw = data['inputs'].float()
                data = model.data_preprocessor(data, training=True)
                mixed += int((data['data_samples'][0].gt_score.max() < 1).item())
                want = model.teacher_logits(data['inputs'])
                assert all(k[1] == epoch for k in keys)
                positions = [k[2] for k in keys]
                got = rec.logits(epoch, positions)
                assert (got - want).abs().le(rec.tolerance(want)).all(), (epoch, positions)
                seen[epoch] += positions
                assert raw.shape[0] == len(positions)
    assert mixed > 0  # the batches were mixed (mixup/cutmix), as in training
    for epoch in range(EPOCHS):
        assert sorted(seen[epoch]) == list(range(20))
    # The two epochs are two different streams of views.
    assert not torch.equal(rec.logits(0, range(20)), rec.logits(1, range(20)))
    ranks = rec.val_ranks()
    assert len(ranks) == 100 and all(0 <= r < 10 for r in ranks.values())


# ----- resuming -----------------------------------------------------------------------------
def test_a_crashed_recording_resumes_and_a_complete_one_is_not_rewritten(tiny_config,
                                                                         reference, tmp_path):
    out = str(tmp_path / 'rec')
    first = record_teacher(tiny_config, out=out, chunk=CHUNK, max_chunks=4, interactive=False)
    assert first['written'] == [(0, 0), (0, 1), (0, 2), (1, 0)] and not first['complete']
    with pytest.raises(RecordError, match='not complete: 2 of 6 chunks missing'):
        TeacherRecord.open(out)
    # A crash inside the write of chunk (1, 1): values half there, no marker.
    rec = TeacherRecord(out, json.load(open(osp.join(out, 'header.json'))), 'r+')
    array = np.load(rec.array_file(1, 'logits'), mmap_mode='r+')
    array[8:12] = 12345
    array.flush()
    del array
    # ... and a chunk whose values were written but whose marker was lost with the crash.
    os.remove(rec.marker(1, 0))
    second = record_teacher(tiny_config, out=out, chunk=CHUNK, interactive=False)
    assert second['written'] == [(1, 0), (1, 1), (1, 2)] and second['skipped'] == 3
    assert second['complete']
    assert arrays_of(out) == arrays_of(reference)
    markers = {m: os.stat(osp.join(out, 'done', m)).st_mtime_ns
               for m in os.listdir(osp.join(out, 'done'))}
    assert len(markers) == 6
    third = record_teacher(tiny_config, out=out, chunk=CHUNK, interactive=False)
    assert third['written'] == [] and third['skipped'] == 6 and third['complete']
    assert {m: os.stat(osp.join(out, 'done', m)).st_mtime_ns
            for m in os.listdir(osp.join(out, 'done'))} == markers
    assert arrays_of(out) == arrays_of(reference)


def test_a_record_of_other_settings_is_refused(tiny_config, reference):
    before = arrays_of(reference)
    with pytest.raises(ConfigError, match=r'holds a record of other settings.*kind: record '
                                          r'"logits", this run "topk"'):
        record_teacher(tiny_config, out=reference, chunk=CHUNK, kind='topk', k=3,
                       interactive=False)
    with pytest.raises(ConfigError, match=r'epochs: record 2, this run 1'):
        record_teacher(tiny_config, out=reference, chunk=CHUNK, epochs=1, interactive=False)
    assert arrays_of(reference) == before


def test_open_refuses_incomplete_and_truncated_records(tiny_config, reference, tmp_path):
    import shutil
    out = str(tmp_path / 'cut')
    shutil.copytree(reference, out)
    TeacherRecord.open(out)
    file = osp.join(out, 'epoch_0001.logits.npy')
    size = os.path.getsize(file)
    with open(file, 'r+b') as f:
        f.truncate(size - 40)
    with pytest.raises(RecordError, match='epoch_0001.logits.npy'):
        TeacherRecord.open(out)
    os.remove(file)
    with pytest.raises(RecordError, match='epoch_0001.logits.npy'):
        TeacherRecord.open(out)
    header = json.load(open(osp.join(out, 'header.json')))
    header.pop('complete')
    json.dump(header, open(osp.join(out, 'header.json'), 'w'))
    os.remove(osp.join(out, 'done', 'e0001_c000002'))
    with pytest.raises(RecordError, match=r'cut is not complete: 1 of 6 chunks missing.*'
                                          r'\(1, 2\)'):
        TeacherRecord.open(out)


# ----- refusals before any work -------------------------------------------------------------
@pytest.mark.parametrize('extra,key', [
    ("train_dataloader = dict(sampler=dict(_delete_=True, type='DefaultSampler', "
     "shuffle=True))\n", "train_dataloader.sampler=dict(type='ReplaySampler')"),
    ("data_preprocessor = dict(mix_mode='batch')\n", "data_preprocessor.mix_mode='pair'"),
    ("data_preprocessor = dict(type='ClsDataPreprocessor')\n",
     "data_preprocessor.type='ReplayClsDataPreprocessor'"),
    ("model = dict(_delete_=True, type='Classifier', student=dict(type='DeiT', arch=None, "
     "embed_dim=32, num_heads=2, depth=2, patch_size=4, img_size=32, num_classes=10))\n",
     "model.type='Distiller'"),
    ("train_dataloader = dict(sampler=dict(data_seed=None))\nrandomness = dict(seed=None)\n",
     'train_dataloader.sampler.data_seed'),
], ids=['sampler', 'batch_mix', 'plain_preprocessor', 'classifier', 'no_seed'])
def test_configs_that_cannot_be_replayed_are_refused_naming_the_key(cifar_tiny, tmp_path,
                                                                    extra, key):
    config = write_tiny_distill_config(tmp_path / 'bad.py', cifar_tiny, per_class=2,
                                       extra=extra)
    out = tmp_path / 'rec'
    with pytest.raises(ConfigError) as info:
        record_teacher(config, out=str(out), chunk=CHUNK, interactive=False)
    assert key in str(info.value)
    assert not out.exists()  # refused before anything was made


# ----- the command --------------------------------------------------------------------------
def test_command_prints_the_size_first_and_help_has_examples(tiny_config, tmp_path, capsys):
    from kdzoo import cli
    with pytest.raises(SystemExit) as info:
        cli.main(['record-teacher', '--help'])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith('usage: kdzoo record-teacher ')
    assert 'kdzoo record-teacher deit_micro_distilled_cifar10' in text.split('examples:')[1]
    out = tmp_path / 'rec'
    cli.main(['record-teacher', tiny_config, '--out', str(out), '--epochs', '1', '--kind',
              'topk', '--k', '3', '--chunk', '8'])
    printed = capsys.readouterr().out
    line = [x for x in printed.splitlines() if x.startswith('teacher record:')]
    assert line == ['teacher record: 20 positions x 1 epochs x 16 B per view (top-3 float16, '
                    '10 classes) = 320 B; for reference, ImageNet-1k (1,281,167 images) x 300 '
                    "epochs: 5.7 GB as top-3 float16, 733.1 MB as 'class' (hard), 15.7 GB as "
                    'top-10 float16']
    assert printed.index('teacher record:') < printed.index('rank 0/1: 3 chunks')
    rec = TeacherRecord.open(str(out))
    assert (rec.kind, rec.header['k'], rec.epochs) == ('topk', 3, 1)


# ----- two processes ------------------------------------------------------------------------
def test_two_gloo_processes_write_the_one_process_record(tiny_config, reference, tmp_path):
    from test_distributed import free_port, launcher_env
    out = tmp_path / 'two'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2',
           '--master-port', str(free_port()), osp.join(REPO, 'tools', 'record_teacher.py'),
           tiny_config, '--out', str(out), '--chunk', str(CHUNK), '--launcher', 'pytorch']
    proc = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=240,
                          env=launcher_env(tmp_path))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert output.count('teacher record: 20 positions') == 1  # rank 0 prints it
    assert 'rank 0/2: 3 chunks of 8 positions' in output  # the other 3 are rank 1's
    assert arrays_of(str(out)) == arrays_of(reference)
    assert TeacherRecord.open(str(out)).val_ranks() == TeacherRecord.open(reference).val_ranks()
    assert sorted(os.listdir(out / 'done')) == sorted(os.listdir(osp.join(reference, 'done')))
