"""The offline teacher (``model.teacher_outputs``): a run that reads the teacher's logits
from a record of the replayed training views trains exactly as the run with the teacher
online, builds no teacher network unless it must, refuses a record of another run before
any step, resumes exactly, and reports the teacher's validation accuracy from the record.

The records here are written with :class:`~kdzoo.records.TeacherRecord` directly, from the
online run's own training loader and data preprocessor, as the recording tool does.
"""
import json
import os
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from conftest import build_runner, load_tool, save_tiny_teacher, write_tiny_distill_config
from kdzoo.datasets.replay import replay_keys
from kdzoo.numerics import autocast_for
from kdzoo.records import RecordError, TeacherRecord, run_fingerprint
from kdzoo.registry import HOOKS, MODELS

PER_CLASS, BATCH = 5, 10  # 50 images: 5 steps per epoch
EPOCHS = 10  # 50 steps
RECORD_EPOCHS = EPOCHS
HIDDEN_TERM = """
model['distill'] = dict(hidden=dict(
    loss=dict(type='HiddenMSELoss'),
    inputs=dict(student_features='student.blocks.0', teacher_features='teacher.layer3'),
    connectors=dict(student_features=dict(type='Aligner'))))
"""


@HOOKS.register_module(force=True)
class OfflineProbeHook(Hook):
    """The logged losses of every step, the teacher's forward calls in training and the
    weights at the end of training."""

    priority = 'LOWEST'

    def __init__(self):
        self.losses, self.teacher_calls, self.weights = {}, 0, None
        self.teacher_built = None

    def before_train(self, runner):
        model = runner.model
        self.teacher_built = model.teacher is not None
        if model.teacher is not None:
            model.teacher.register_forward_hook(lambda *_: self._called(model))

    def _called(self, model):
        self.teacher_calls += model.training  # not the validation at the end

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[runner.iter] = {k: float(v.detach()) for k, v in outputs.items()
                                    if k.startswith('loss')}

    def after_train(self, runner):
        self.weights = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


@pytest.fixture(scope='module')
def setup(cifar_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp('offline_teacher')
    teacher = save_tiny_teacher(root / 'teacher.pth', seed=1)
    other_teacher = save_tiny_teacher(root / 'other_teacher.pth', seed=2)
    config = write_tiny_distill_config(
        root / 'tiny.py', cifar_tiny, teacher_checkpoint=teacher, per_class=PER_CLASS,
        batch_size=BATCH, max_epochs=EPOCHS,
        extra='default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1))\n'
              "custom_hooks = [dict(type='OfflineProbeHook')]\n")
    return dict(root=root, data=cifar_tiny, teacher=teacher, other_teacher=other_teacher,
                config=config)


def load_cfg(config, work_dir, **options):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'offline_{uuid.uuid4().hex[:8]}'
    cfg.merge_from_dict(options)
    return cfg


def probe_of(runner):
    return next(h for h in runner.hooks if isinstance(h, OfflineProbeHook))


def train(cfg):
    runner = build_runner(cfg)
    runner.train()
    return runner, probe_of(runner)


def make_record(cfg, out, epochs=RECORD_EPOCHS, kind='logits', k=None, dtype='float16'):
    """Record the teacher of the (online) config ``cfg`` on every replayed view of
    ``epochs`` epochs, and its validation ranks; returns the record's folder."""
    runner = build_runner(cfg)
    model, loader = runner.model, runner.train_dataloader
    sampler = loader.sampler
    positions = len(sampler.order(0))
    fingerprint = run_fingerprint(runner.cfg, loader.dataset, dict(kind=kind, k=k, dtype=dtype))
    record = TeacherRecord.create(str(out), fingerprint, epochs, positions, 10, kind=kind,
                                  k=k, dtype=dtype, chunk=positions)
    record.make_files()
    # The teacher at the run's precision, as the online run has it (kdzoo record-teacher too).
    with torch.no_grad(), autocast_for(runner.cfg.env_cfg.precision, 'cpu'):
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            outputs = torch.full((positions, 10), float('nan'))
            for batch in loader:
                data = model.data_preprocessor(batch, training=True)
                where = [key[2] for key in replay_keys(data['data_samples'])]
                outputs[where] = model.teacher_logits(data['inputs'])
            assert not outputs.isnan().any()
            record.write_chunk(epoch, 0, outputs)
        paths, ranks = [], []
        for batch in runner.val_dataloader:
            data = model.data_preprocessor(batch, training=False)
            logits = model.teacher_logits(data['inputs'])
            labels = torch.cat([s.gt_label for s in data['data_samples']])
            ranks += (logits > logits.gather(1, labels[:, None])).sum(1).tolist()
            paths += [s.img_path for s in data['data_samples']]
    record.write_val(paths, ranks)
    record.finish()
    return str(out)


@pytest.fixture(scope='module')
def record(setup):
    return make_record(load_cfg(setup['config'], setup['root'] / 'rec_work'),
                       setup['root'] / 'record')


@pytest.fixture(scope='module')
def runs(setup, record):
    """The same 50 steps with the teacher online and from the record."""
    online_runner, online = train(load_cfg(setup['config'], setup['root'] / 'online'))
    offline_runner, offline = train(load_cfg(setup['config'], setup['root'] / 'offline',
                                             **{'model.teacher_outputs': record}))
    return dict(online=online, offline=offline, online_runner=online_runner,
                offline_runner=offline_runner)


# ----- (a) the same training ----------------------------------------------------------------
def test_a_record_trains_exactly_as_the_online_teacher(runs):
    online, offline = runs['online'], runs['offline']
    assert sorted(online.losses) == sorted(offline.losses) == list(range(EPOCHS * 5))
    for step, losses in online.losses.items():
        assert losses['loss_distill'] > 0
        assert offline.losses[step] == pytest.approx(losses, rel=1e-6, abs=1e-7), step
    assert set(online.weights) == set(offline.weights)
    assert not [k for k in offline.weights if k.startswith('teacher.')]
    for key, value in online.weights.items():
        assert torch.allclose(offline.weights[key], value, rtol=1e-5, atol=1e-7), key


def test_a_building_the_teacher_draws_nothing_from_the_runs_generator(setup, record, tmp_path):
    """Online and offline are the same run only if building the teacher network (online)
    leaves the global generator where not building it (offline) does: the student's
    drop-path and dropout, and the loaders' worker seeds, draw from it afterwards. (The
    tiny student above has no drop-path, so the 50-step comparison cannot see this.)"""
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance(f'offline_{uuid.uuid4().hex[:8]}', scope_name='kdzoo')
    after = []
    for options in ({}, {'model.teacher_outputs': record}):
        cfg = load_cfg(setup['config'], tmp_path, **options)
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        assert (model.teacher is None) == bool(options)
        after.append(torch.rand(4))
    assert torch.equal(*after)


def test_a_another_records_views_change_the_losses(setup, record, tmp_path):
    """The comparison above can fail: a record whose epochs are rolled by one (epoch e
    holds epoch e+1's outputs) gives other losses from the first step on."""
    rolled = str(tmp_path / 'rolled')
    os.makedirs(rolled)
    for name in os.listdir(record):
        src = osp.join(record, name)
        if osp.isfile(src):
            os.symlink(src, osp.join(rolled, name))
    os.symlink(osp.join(record, 'done'), osp.join(rolled, 'done'))
    for epoch in range(RECORD_EPOCHS):
        target = osp.join(rolled, f'epoch_{epoch:04d}.logits.npy')
        os.remove(target)
        os.symlink(osp.join(record, f'epoch_{(epoch + 1) % RECORD_EPOCHS:04d}.logits.npy'),
                   target)
    _, probe = train(load_cfg(setup['config'], tmp_path / 'work',
                              **{'model.teacher_outputs': rolled, 'train_cfg.max_epochs': 1}))
    runner, online = train(load_cfg(setup['config'], tmp_path / 'online',
                                    **{'train_cfg.max_epochs': 1}))
    assert any(probe.losses[s]['loss_distill'] != online.losses[s]['loss_distill']
               for s in online.losses)


# ----- (b) no teacher network -----------------------------------------------------------------
def test_b_no_teacher_network_is_built_or_run_with_a_record(runs, record):
    model = runs['offline_runner'].model
    assert model.teacher is None and runs['offline'].teacher_built is False
    assert model.recorded_teacher.path == record
    online = runs['online']
    assert online.teacher_built and online.teacher_calls == EPOCHS * 5


def test_b_verify_every_runs_the_teacher_on_the_checked_steps_only(setup, record, tmp_path):
    _, probe = train(load_cfg(setup['config'], tmp_path, **{
        'model.teacher_outputs': record, 'model.verify_every': 3,
        'train_cfg.max_epochs': 2}))
    assert probe.teacher_built
    assert probe.teacher_calls == 4  # steps 0, 3, 6, 9 of 10


def test_b_a_term_on_teacher_layers_builds_the_teacher(setup, record, tmp_path):
    """DearKD's hidden term reads a teacher layer: the network is built and run for it,
    the logits still come from the record."""
    config = write_tiny_distill_config(
        tmp_path / 'hidden.py', setup['data'], teacher_checkpoint=setup['teacher'],
        per_class=PER_CLASS, batch_size=BATCH, max_epochs=1,
        extra="custom_hooks = [dict(type='OfflineProbeHook')]\n" + HIDDEN_TERM)
    runner, probe = train(load_cfg(config, tmp_path / 'work',
                                   **{'model.teacher_outputs': record}))
    assert probe.teacher_built and probe.teacher_calls == 5
    assert list(runner.model.teacher_recorder.names) == ['layer3']
    assert all(losses['loss_hidden'] > 0 for losses in probe.losses.values())
    cfg = load_cfg(setup['config'], tmp_path / 'unused', **{'model.teacher_outputs': record})
    assert MODELS.build(cfg.model).teacher is None


# ----- (c) bad inputs, refused before any step --------------------------------------------------
def refused(cfg):
    """The error of a run that must stop before its first step."""
    runner = build_runner(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    with pytest.raises(RecordError) as error:
        runner.train()
    assert not probe_of(runner).losses
    after = runner.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    return str(error.value)


@pytest.mark.parametrize('option, key', [
    ('train_dataloader.dataset.pipeline.3.magnitude_level', 'dataset.pipeline'),
    ('train_dataloader.sampler.data_seed', 'data_seed'),
    ('model.teacher.checkpoint', 'teacher.checkpoint_sha256'),
])
def test_c_a_record_of_another_run_is_refused(setup, record, tmp_path, option, key):
    value = {'train_dataloader.dataset.pipeline.3.magnitude_level': 5,
             'train_dataloader.sampler.data_seed': 3,
             'model.teacher.checkpoint': setup['other_teacher']}[option]
    cfg = load_cfg(setup['config'], tmp_path, **{'model.teacher_outputs': record})
    if option.startswith('train_dataloader.dataset.pipeline'):
        cfg.train_dataloader.dataset.pipeline[3].magnitude_level = value
    else:
        cfg.merge_from_dict({option: value})
    message = refused(cfg)
    assert record in message and 'recorded for another run' in message
    assert key in message, message


def test_c_too_few_recorded_epochs_are_refused(setup, record, tmp_path):
    cfg = load_cfg(setup['config'], tmp_path, **{'model.teacher_outputs': record,
                                                 'train_cfg.max_epochs': RECORD_EPOCHS + 1})
    message = refused(cfg)
    assert record in message and f'holds {RECORD_EPOCHS} epochs' in message
    assert f'trains {RECORD_EPOCHS + 1}' in message


def test_c_a_truncated_array_file_is_refused(setup, record, tmp_path):
    import shutil
    damaged = str(tmp_path / 'damaged')
    shutil.copytree(record, damaged)
    file = osp.join(damaged, 'epoch_0003.logits.npy')
    with open(file, 'r+b') as f:
        f.truncate(osp.getsize(file) - 100)
    cfg = load_cfg(setup['config'], tmp_path / 'work', **{'model.teacher_outputs': damaged})
    with pytest.raises(RecordError, match='epoch_0003.logits.npy'):
        build_runner(cfg)


def test_c_a_missing_record_is_refused(setup, tmp_path):
    cfg = load_cfg(setup['config'], tmp_path / 'work',
                   **{'model.teacher_outputs': str(tmp_path / 'nothing')})
    with pytest.raises(RecordError, match='nothing: no teacher record there'):
        build_runner(cfg)


def test_c_verify_every_catches_an_altered_record(setup, record, tmp_path):
    import shutil
    altered = str(tmp_path / 'altered')
    shutil.copytree(record, altered)
    # A view of epoch 1 (steps 5-9), altered by 0.5 in one logit: every step is checked.
    runner = build_runner(load_cfg(setup['config'], tmp_path / 'keys'))
    sampler = runner.train_dataloader.sampler
    sampler.set_epoch(1)
    position = list(sampler)[13][2]  # in the second batch of epoch 1: step 6
    logits = np.load(osp.join(altered, 'epoch_0001.logits.npy'), mmap_mode='r+')
    value = torch.from_numpy(logits[position].copy().view(np.float16)).float()
    value[4] += 0.5
    logits[position] = value.half().numpy().view(np.uint16)
    logits.flush()
    del logits
    cfg = load_cfg(setup['config'], tmp_path / 'work', **{
        'model.teacher_outputs': altered, 'model.verify_every': 1, 'train_cfg.max_epochs': 2})
    runner = build_runner(cfg)
    with pytest.raises(RecordError) as error:
        runner.train()
    message = str(error.value)
    assert altered in message and 'epoch 1' in message and f'[{position}]' in message
    assert 'largest difference 0.5' in message
    assert sorted(probe_of(runner).losses) == list(range(6))  # steps 0-5 went through


def test_c_a_batch_without_replay_keys_names_the_sampler(record):
    from mmpretrain.structures import DataSample
    from kdzoo.models.recorded_teacher import RecordedTeacher
    with pytest.raises(RecordError, match="sampler=dict.type='ReplaySampler'"):
        RecordedTeacher(record).logits([DataSample(), DataSample()])


def test_c_bad_settings_are_refused(setup, record):
    cfg = load_cfg(setup['config'], setup['root'] / 'unused')
    with pytest.raises(ValueError, match='verify_every must be an integer >= 0'):
        MODELS.build(dict(cfg.model, teacher_outputs=record, verify_every=-1))
    with pytest.raises(ValueError, match='needs model.teacher_outputs'):
        MODELS.build(dict(cfg.model, verify_every=2))
    with pytest.raises(ValueError, match='verify_every runs the teacher'):
        MODELS.build(dict(cfg.model, teacher=None, teacher_outputs=record, verify_every=1))
    with pytest.raises(RecordError, match='10 classes but the student predicts 7'):
        MODELS.build(dict(cfg.model, teacher_outputs=record,
                          student=dict(cfg.model.student, num_classes=7),
                          data_preprocessor=None))


@pytest.mark.parametrize('kind, k', [('class', None), ('topk', 3)])
def test_class_and_topk_records_train_as_online_and_pass_verification(setup, runs, tmp_path,
                                                                       kind, k):
    """Hard distillation reads the teacher's class only: a 'class' or 'topk' record gives
    the online run's first epoch, and verify_every=1 finds every step in agreement."""
    cfg = load_cfg(setup['config'], tmp_path / 'rec', **{'train_cfg.max_epochs': 1})
    path = make_record(cfg, tmp_path / 'record', epochs=1, kind=kind, k=k)
    _, probe = train(load_cfg(setup['config'], tmp_path / 'work', **{
        'model.teacher_outputs': path, 'model.verify_every': 1, 'train_cfg.max_epochs': 1}))
    assert probe.teacher_calls == 5
    for step, losses in probe.losses.items():
        assert losses == pytest.approx(runs['online'].losses[step], rel=1e-6, abs=1e-7)
    if kind == 'class':
        soft = load_cfg(setup['config'], tmp_path / 'unused', **{
            'model.teacher_outputs': path, 'model.distill_loss': dict(type='SoftDistillLoss')})
        with pytest.raises(RecordError, match="only the teacher's class.*SoftDistillLoss"):
            MODELS.build(soft.model)


# ----- (d) resume --------------------------------------------------------------------------------
def test_d_a_resumed_run_from_a_record_ends_with_the_uninterrupted_weights(setup, record,
                                                                            runs, tmp_path):
    cfg = load_cfg(setup['config'], tmp_path / 'resumed', **{'model.teacher_outputs': record})
    checkpoint = str(setup['root'] / 'offline' / 'epoch_7.pth')
    cfg.resume, cfg.load_from = True, checkpoint
    runner, resumed = train(cfg)
    full = runs['offline']
    assert sorted(resumed.losses) == list(range(35, 50))
    for step in resumed.losses:
        assert resumed.losses[step] == pytest.approx(full.losses[step], rel=1e-6, abs=1e-7)
    for key, value in full.weights.items():
        assert torch.allclose(resumed.weights[key], value, rtol=1e-5, atol=1e-7), key


# ----- (e) the teacher's validation accuracy -----------------------------------------------------
def test_e_teacher_accuracy_from_the_record_equals_the_online_one(runs):
    online = runs['online_runner'].val()
    offline = runs['offline_runner'].val()
    assert 'teacher/top1' in offline and 'teacher/top5' in offline
    for key in ('teacher/top1', 'teacher/top5'):
        assert offline[key] == pytest.approx(online[key])
    assert runs['offline_runner'].test()['teacher/top1'] == pytest.approx(online['teacher/top1'])


def test_e_a_validation_image_missing_from_the_record_is_named(setup, record, tmp_path):
    import shutil
    partial = str(tmp_path / 'partial')
    shutil.copytree(record, partial)
    with open(osp.join(partial, 'val.json')) as f:
        val = json.load(f)
    missing = val['paths'].pop(17)
    val['ranks'].pop(17)
    with open(osp.join(partial, 'val.json'), 'w') as f:
        json.dump(val, f)
    runner = build_runner(load_cfg(setup['config'], tmp_path / 'work',
                                   **{'model.teacher_outputs': partial}))
    with pytest.raises(RecordError) as error:
        runner.val()
    assert missing in str(error.value) and 'val.json' in str(error.value)


# ----- the tools ---------------------------------------------------------------------------------
def test_sweep_with_a_record_option(setup, record, tmp_path):
    """tools/sweep.py --cfg-options model.teacher_outputs=PATH: each seed reads the record
    (the data seed fixed to the record's)."""
    sweep = load_tool('sweep')
    sweep.main([setup['config'], '--seeds', '0', '1', '--work-dir', str(tmp_path / 'sweep'),
                '--cfg-options', f'model.teacher_outputs={record}', 'train_cfg.max_epochs=1',
                'train_dataloader.sampler.data_seed=0', 'train_cfg.val_interval=1',
                'custom_hooks=[]'])
    for seed in (0, 1):
        with open(osp.join(tmp_path, 'sweep', 'tiny', f'seed{seed}', 'result.json')) as f:
            assert 'teacher/top1' in json.dumps(json.load(f))


def test_ddp_wraps_a_distiller_without_a_teacher_network(setup, record, tmp_path):
    """kdzoo.DistillerDDP (one gloo process) trains a step of the offline distiller."""
    import torch.distributed as dist
    from kdzoo.engine import DistillerDDP
    runner = build_runner(load_cfg(setup['config'], tmp_path / 'work',
                                   **{'model.teacher_outputs': record}))
    optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    batch = next(iter(runner.train_dataloader))
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0,
                            world_size=1)
    try:
        ddp = DistillerDDP(runner.model)
        assert ddp.module.teacher is None
        before = runner.model.student.head.weight.detach().clone()
        losses = ddp.train_step(batch, optim_wrapper)
        assert losses['loss_distill'] > 0
        assert not torch.equal(runner.model.student.head.weight, before)
    finally:
        dist.destroy_process_group()
