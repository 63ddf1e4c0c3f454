"""The DearKD stage switch in real (tiny) training runs, uninterrupted and resumed."""
import os.path as osp
import textwrap
import uuid
from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook

from conftest import CONFIGS, load_tool
from kdzoo.engine import DistillStageHook
from kdzoo.registry import HOOKS, MODEL_WRAPPERS

MAX_EPOCHS, SWITCH = 4, 2


@HOOKS.register_module(force=True)
class StageProbeHook(Hook):
    """Per epoch: distill_active during training, the loss terms that were on (nonzero),
    teacher forwards."""

    priority = 'LOWEST'

    def __init__(self):
        self.epochs = {}

    def before_train(self, runner):
        net = runner.model.teacher.model
        net.register_forward_hook(lambda *a: self.epochs[runner.epoch]['teacher_calls'].append(1))

    def before_train_epoch(self, runner):
        self.epochs[runner.epoch] = dict(active=[], keys=set(), teacher_calls=[])

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        record = self.epochs[runner.epoch]
        record['active'].append(runner.model.distill_active)
        # Terms that are off are logged as exactly 0.
        record['keys'] |= {k for k, v in outputs.items() if k.startswith('loss_') and v != 0}

    def summary(self):
        return {e: (r['active'], sorted(r['keys']), len(r['teacher_calls']))
                for e, r in self.epochs.items()}


def tiny_dearkd_cfg(data_root, work_dir, batch_size=10, stage_hook=None):
    """configs/dearkd/dearkd_micro_cifar10.py with tiny networks, 10 images, 1 step/epoch
    (2 with ``batch_size=6``: 6 + 4)."""
    cfg = Config.fromfile(osp.join(CONFIGS, 'dearkd', 'dearkd_micro_cifar10.py'))
    cfg.model.student.update(embed_dim=32, num_heads=4, depth=2, num_mhca_blocks=1)
    cfg.model.teacher.update(model=dict(type='CifarResNet', depth=8, widths=(8, 16, 32),
                                        num_classes=10), checkpoint=None,
                             random_init=True)
    cfg.model.distill.hidden_layer3.inputs.student_features = 'student.blocks.0'
    cfg.train_dataloader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=data_root, per_class=1)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.train_cfg.max_epochs = MAX_EPOCHS
    cfg.default_hooks.distill_stage = stage_hook or dict(type='DistillStageHook',
                                                         switch_epoch=SWITCH)
    cfg.default_hooks.progress_bar.disable = True
    cfg.custom_hooks = [dict(type='StageProbeHook')]
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.work_dir = str(work_dir)
    return cfg


def train(cfg, tmp_path, *extra):
    """tools/train.py on a dumped copy of ``cfg``; returns (probe summary, log text)."""
    cfg.experiment_name = f'dearkd_stage_{uuid.uuid4().hex[:8]}'
    path = tmp_path / f'{cfg.experiment_name}.py'
    cfg.dump(str(path))
    runner = load_tool('train').main([str(path), *extra])
    probe = next(h for h in runner.hooks if isinstance(h, StageProbeHook))
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return probe.summary(), f.read()


@pytest.fixture(scope='module')
def uninterrupted(cifar_tiny, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('dearkd_stage')
    work_dir = tmp / 'full'
    summary, log = train(tiny_dearkd_cfg(cifar_tiny, work_dir), tmp)
    return summary, log, work_dir


def test_switch_at_the_configured_epoch(uninterrupted):
    summary, log, _ = uninterrupted
    stage1 = ([True], ['loss_cls', 'loss_distill', 'loss_hidden_layer3'], 1)
    stage2 = ([False], ['loss_cls'], 0)
    assert summary == {0: stage1, 1: stage1, 2: stage2, 3: stage2}
    assert log.count('switching to stage 2') == 1
    assert f'epoch {SWITCH + 1}: switching to stage 2' in log


@pytest.mark.parametrize('resume_epoch', [SWITCH - 1, SWITCH, SWITCH + 1],
                         ids=['before', 'at', 'after'])
def test_resumed_run_follows_the_uninterrupted_stage_schedule(uninterrupted, cifar_tiny,
                                                              tmp_path, resume_epoch):
    # Stages, active terms and teacher calls per epoch; the losses and weights of a
    # resumed run against an uninterrupted one: tests/test_resume_exact.py.
    full, _, full_dir = uninterrupted
    ckpt = str(full_dir / f'epoch_{resume_epoch}.pth')
    summary, log = train(tiny_dearkd_cfg(cifar_tiny, tmp_path / 'resumed'), tmp_path,
                         '--resume', ckpt)
    assert sorted(summary) == list(range(resume_epoch, MAX_EPOCHS))
    assert summary == {e: full[e] for e in range(resume_epoch, MAX_EPOCHS)}
    stage = 1 if resume_epoch < SWITCH else 2
    assert f'starting at epoch {resume_epoch + 1} in stage {stage}' in log
    # The switch is announced only when it happens within this run.
    assert ('switching to stage 2' in log) == (resume_epoch < SWITCH)


# By iteration: 2 steps per epoch, stage 2 from the 4th of 8 steps (epoch 2, 2nd step).
ITER_STAGES = {0: [True, True], 1: [True, False], 2: [False, False], 3: [False, False]}


def iter_cfg(data_root, work_dir, **hook):
    return tiny_dearkd_cfg(data_root, work_dir, batch_size=6,
                           stage_hook=dict(type='DistillStageHook', **hook))


@pytest.mark.parametrize('hook', [dict(switch_iter=3),
                                  dict(switch_ratio=3 / 8, by_epoch=False)],
                         ids=['switch_iter', 'switch_ratio'])
def test_switch_by_iteration(cifar_tiny, tmp_path, hook):
    summary, log = train(iter_cfg(cifar_tiny, tmp_path / 'run', **hook), tmp_path)
    assert {e: active for e, (active, _, _) in summary.items()} == ITER_STAGES
    # The teacher runs in the three stage-1 steps only.
    assert [calls for _, _, calls in summary.values()] == [2, 1, 0, 0]
    assert 'stage 1 (with the teacher) in iterations 1-3 of 8' in log
    assert log.count('iteration 4: switching to stage 2') == 1


@pytest.mark.parametrize('resume_epoch', [1, 2])
def test_switch_by_iteration_after_resume(cifar_tiny, tmp_path, resume_epoch):
    first = iter_cfg(cifar_tiny, tmp_path / 'run', switch_iter=3)
    train(first, tmp_path)
    ckpt = str(tmp_path / 'run' / f'epoch_{resume_epoch}.pth')
    summary, log = train(iter_cfg(cifar_tiny, tmp_path / 'resumed', switch_iter=3), tmp_path,
                         '--resume', ckpt)
    assert {e: active for e, (active, _, _) in summary.items()} == {
        e: ITER_STAGES[e] for e in range(resume_epoch, MAX_EPOCHS)}
    stage = 1 if resume_epoch * 2 < 3 else 2
    assert f'starting at iteration {resume_epoch * 2 + 1} in stage {stage}' in log


class FakeDistiller(nn.Module):
    """The stage interface of a Distiller: terms and set_stage."""

    def __init__(self, terms=('distill', 'hidden')):
        super().__init__()
        self.terms = {t: None for t in terms}
        self.stage = {t: 1.0 for t in terms}

    def set_stage(self, multipliers):
        self.stage = {t: multipliers.get(t, 0.0) for t in self.terms}

    @property
    def distill_active(self):
        return any(m > 0 for m in self.stage.values())


def fake_runner(epoch, max_epochs, model, it=0, max_iters=100):
    info, logs = {}, []
    return SimpleNamespace(epoch=epoch, max_epochs=max_epochs, iter=it, max_iters=max_iters,
                           model=model, logger=SimpleNamespace(info=logs.append),
                           message_hub=SimpleNamespace(update_info=info.__setitem__),
                           info=info, logs=logs)


@MODEL_WRAPPERS.register_module(force=True)
class FakeWrapper(nn.Module):

    def __init__(self, module):
        super().__init__()
        self.module = module


@pytest.mark.parametrize('max_epochs,epoch,active', [
    (300, 249, True), (300, 250, False), (20, 16, True), (20, 17, False),
    (1000, 832, True), (1000, 833, False)])
def test_switch_ratio_and_wrapped_model(max_epochs, epoch, active):
    net = FakeDistiller()
    net.set_stage({} if active else {'distill': 1.0})
    runner = fake_runner(epoch, max_epochs, FakeWrapper(net))
    DistillStageHook(switch_ratio=250 / 300).before_train_epoch(runner)
    assert net.stage == {'distill': float(active), 'hidden': float(active)}
    assert runner.info['distill_stage'] == (1 if active else 2)


def test_schedule_switches_single_terms_and_ramps():
    # 'distill' in epochs 1-250 only, 'hidden' on from epoch 11 with a ramp over 20
    # epochs, any other term throughout.
    hook = DistillStageHook(schedule=dict(
        distill=dict(end=250),
        hidden=[dict(begin=30), dict(begin=10, end=30, start=0.0, stop=1.0)]))
    net = FakeDistiller(('distill', 'hidden', 'other'))
    expected = {0: (1, 0, 1), 10: (1, 0, 1), 15: (1, 0.25, 1), 29: (1, 0.95, 1),
                30: (1, 1, 1), 249: (1, 1, 1), 250: (0, 1, 1), 299: (0, 1, 1)}
    for epoch, (d, h, o) in expected.items():
        runner = fake_runner(epoch, 300, net)
        hook.before_train_epoch(runner)
        assert net.stage == pytest.approx(dict(distill=d, hidden=h, other=o)), epoch
    runner = fake_runner(0, 300, net)
    hook.before_train(runner)
    assert 'distill: epochs 1-250 x1' in runner.logs[0]
    assert 'hidden: epochs 11-30 x0->x1, epochs 31-end x1' in runner.logs[0]


def test_schedule_by_iteration_and_its_errors():
    hook = DistillStageHook(schedule=dict(hidden=dict(begin=5)), by_epoch=False)
    net = FakeDistiller()
    for it, h in ((4, 0.0), (5, 1.0)):
        hook.before_train_iter(fake_runner(0, 1, net, it=it), 0)
        assert net.stage == dict(distill=1.0, hidden=h)
    with pytest.raises(ValueError, match=r"not terms of the Distiller; its terms are "
                                         r"\['distill', 'hidden'\]"):
        DistillStageHook(schedule=dict(hiden=dict(end=3))).before_train(
            fake_runner(0, 5, FakeDistiller()))
    with pytest.raises(ValueError, match='begins at 7, after the last of the 5 epochs'):
        DistillStageHook(schedule=dict(hidden=dict(begin=7))).before_train(
            fake_runner(0, 5, FakeDistiller()))
    with pytest.raises(ValueError, match='switch_epoch=10 is beyond the schedule of 1 epochs'):
        DistillStageHook(switch_epoch=10).before_train(fake_runner(0, 1, FakeDistiller()))
    with pytest.raises(ValueError, match='overlap'):
        DistillStageHook(schedule=dict(hidden=[dict(end=10), dict(begin=5)]))
    with pytest.raises(ValueError, match='linear ramp'):
        DistillStageHook(schedule=dict(hidden=dict(begin=0, start=0.0, stop=1.0)))
    with pytest.raises(ValueError, match='unknown keys'):
        DistillStageHook(schedule=dict(hidden=dict(stop_at=3)))


def test_switch_at_zero_never_runs_the_teacher(cifar_tiny, tmp_path):
    cfg = tiny_dearkd_cfg(cifar_tiny, tmp_path / 'run',
                          stage_hook=dict(type='DistillStageHook', switch_ratio=0))
    summary, log = train(cfg, tmp_path)
    assert summary == {e: ([False], ['loss_cls'], 0) for e in range(MAX_EPOCHS)}
    assert f'no stage 1: the teacher is not run in any of the {MAX_EPOCHS} epochs' in log


def test_no_terms_with_the_stage_hook_trains(cifar_tiny, tmp_path):
    # A Distiller with distill_loss=None and no terms, scheduled: it used to crash at its
    # first step ('NoneType' object is not callable).
    cfg = tiny_dearkd_cfg(cifar_tiny, tmp_path / 'run')
    cfg.model.distill_loss = None
    cfg.model.distill = dict(hidden_layer3=None)
    summary, log = train(cfg, tmp_path)
    assert summary == {e: ([False], ['loss_cls'], 0) for e in range(MAX_EPOCHS)}


def test_hook_arguments_and_model_check():
    with pytest.raises(ValueError):
        DistillStageHook()
    with pytest.raises(ValueError, match='exactly one'):
        DistillStageHook(switch_epoch=3, switch_ratio=0.5)
    with pytest.raises(ValueError, match='exactly one'):
        DistillStageHook(switch_epoch=3, switch_iter=5)
    with pytest.raises(ValueError, match='exactly one'):
        DistillStageHook(switch_epoch=3, schedule=dict(a=dict(end=3)))
    with pytest.raises(ValueError, match='switch_iter must be an integer >= 0, got -1'):
        DistillStageHook(switch_iter=-1)
    with pytest.raises(ValueError, match='by_epoch=False'):
        DistillStageHook(switch_epoch=3, by_epoch=False)
    with pytest.raises(TypeError, match='set_stage'):
        DistillStageHook(switch_epoch=3).before_train(fake_runner(0, 5, nn.Linear(1, 1)))


# ----- a child config that names another switch than its base -------------------------------
def write_tiny_child(path, data_root, stage_hook=''):
    """A config file inheriting configs/dearkd/dearkd_micro_cifar10.py (whose stage hook
    says switch_ratio) with tiny networks, 10 images, 1 step per epoch, 2 epochs and
    ``stage_hook`` (the keyword text of its ``distill_stage``, '' for none)."""
    hooks = 'progress_bar=dict(disable=True), logger=dict(interval=1)'
    if stage_hook:
        hooks += f", distill_stage=dict(type='DistillStageHook', {stage_hook})"
    path.write_text(textwrap.dedent(f'''
        _base_ = [{osp.join(CONFIGS, 'dearkd', 'dearkd_micro_cifar10.py')!r}]
        model = dict(
            student=dict(embed_dim=32, num_heads=4, depth=2, num_mhca_blocks=1),
            teacher=dict(model=dict(depth=8, widths=(8, 16, 32)), checkpoint=None,
                         random_init=True),
            distill=dict(hidden_layer3=dict(inputs=dict(student_features='student.blocks.0'))))
        train_dataloader = dict(batch_size=10, num_workers=0, persistent_workers=False,
                                dataset=dict(data_root={data_root!r}, per_class=1))
        val_dataloader = val_cfg = val_evaluator = None
        test_dataloader = test_cfg = test_evaluator = None
        train_cfg = dict(max_epochs=2)
        custom_hooks = [dict(type='StageProbeHook')]
        default_hooks = dict({hooks})
        env_cfg = dict(dist_cfg=dict(backend='gloo'))
        experiment_name = {path.stem + '_' + uuid.uuid4().hex[:8]!r}
    '''))
    return str(path)


def train_file(config, work_dir, *extra):
    """tools/train.py on a config file; returns (probe summary, log text)."""
    runner = load_tool('train').main([config, '--work-dir', str(work_dir), *extra])
    probe = next(h for h in runner.hooks if isinstance(h, StageProbeHook))
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return probe.summary(), f.read()


STAGE1 = ([True], ['loss_cls', 'loss_distill', 'loss_hidden_layer3'], 1)
STAGE2 = ([False], ['loss_cls'], 0)


def test_child_config_switch_replaces_the_inherited_one(cifar_tiny, tmp_path):
    """The README's override in a child of a shipped DearKD config: mmengine merged it with
    the base's switch_ratio and the hook refused both."""
    child = write_tiny_child(tmp_path / 'child.py', cifar_tiny, 'switch_epoch=1')
    summary, log = train_file(child, tmp_path / 'work')
    assert summary == {0: STAGE1, 1: STAGE2}
    assert 'stage 1 (with the teacher) in epochs 1-1 of 2' in log


def test_switch_option_replaces_the_configs_switch(cifar_tiny, tmp_path):
    child = write_tiny_child(tmp_path / 'inherits.py', cifar_tiny)  # switch_ratio=250/300
    summary, log = train_file(child, tmp_path / 'work', '--cfg-options',
                              'default_hooks.distill_stage.switch_epoch=1')
    assert summary == {0: STAGE1, 1: STAGE2}
    assert 'stage 1 (with the teacher) in epochs 1-1 of 2' in log


def test_the_switch_set_last_wins(cifar_tiny, tmp_path):
    """Through a chain of files (a grandchild goes back to switch_ratio after its parent's
    switch_epoch) and options; a switch the config cannot attribute is left to the hook,
    which names the way out."""
    from kdzoo.engine.config_check import last_switch_key, prepare_config
    child = write_tiny_child(tmp_path / 'child.py', cifar_tiny, 'switch_epoch=1')
    grandchild = tmp_path / 'grandchild.py'
    grandchild.write_text("_base_ = ['./child.py']\n"
                          "default_hooks = {'distill_stage': {'switch_ratio': 0.5}}\n")
    merged = Config.fromfile(str(grandchild)).default_hooks.distill_stage
    assert merged.switch_epoch == 1 and merged.switch_ratio == 0.5  # mmengine's merge
    assert last_switch_key(child) == 'switch_epoch'
    assert last_switch_key(str(grandchild)) == 'switch_ratio'
    stage = prepare_config(Config.fromfile(str(grandchild))).default_hooks.distill_stage
    assert dict(stage) == dict(type='DistillStageHook', switch_ratio=0.5)
    cfg = Config.fromfile(str(grandchild))
    cfg.merge_from_dict({'default_hooks.distill_stage.switch_iter': 3})
    stage = prepare_config(cfg).default_hooks.distill_stage
    assert dict(stage) == dict(type='DistillStageHook', switch_iter=3)
    assert cfg.default_hooks.distill_stage.switch_epoch == 1  # the caller's config is kept
    # Not from a file: both stay, and the hook says how to replace an inherited switch.
    cfg = Config(dict(default_hooks=dict(distill_stage=dict(
        type='DistillStageHook', switch_ratio=0.5, switch_epoch=1))))
    hook_cfg = dict(prepare_config(cfg).default_hooks.distill_stage)
    hook_cfg.pop('type')
    with pytest.raises(ValueError, match=r"exactly one .* got \['switch_epoch', "
                                         r"'switch_ratio'\] .*_delete_=True"):
        DistillStageHook(**hook_cfg)
