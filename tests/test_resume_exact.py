"""A resumed run continues from exactly what was saved: the student's and the connectors'
weights, the optimizer's state, the learning-rate schedulers and the stage, so its next
steps give the same losses and weights as the uninterrupted run.

The tiny DearKD run has no random augmentation, mixup or drop path, and mmengine's
sampler orders each epoch from the seed and the epoch alone, so the data of a resumed
epoch is that of the uninterrupted one and every difference comes from the state that
the checkpoint carried (mmengine keeps no global RNG state in checkpoints and kdzoo
promises none). Checkpoints also load strictly: a state dict that misses a student key or
holds a foreign one is refused.
"""
import copy
import os.path as osp
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from conftest import CONFIGS, load_tool, save_tiny_teacher, tiny_resnet
from kdzoo.models.checkpoint import fit_state_dict, read_checkpoint
from kdzoo.registry import HOOKS, MODELS

MAX_EPOCHS, RESUME_EPOCH, ITERS_PER_EPOCH = 3, 2, 2
# The DeiT term stops after epoch 2; the hidden term (through its Aligner connector)
# runs throughout, so the resumed epoch's losses depend on the connector's weights.
SCHEDULE = dict(distill=dict(end=RESUME_EPOCH))


def snapshot(runner):
    """Copies of everything a resume must bring back."""
    model = runner.model
    return dict(
        model={k: v.detach().clone() for k, v in model.state_dict().items()},
        optimizer=copy.deepcopy(runner.optim_wrapper.state_dict()),
        schedulers=[copy.deepcopy(s.state_dict()) for s in runner.param_schedulers],
        stage=model.stage, epoch=runner.epoch, iter=runner.iter)


@HOOKS.register_module(force=True)
class ResumeProbeHook(Hook):
    """The state at the start of training and at the end of every epoch, the stage in
    force in every epoch and the logged loss terms of every iteration."""

    priority = 'LOWEST'

    def __init__(self):
        self.start, self.after_epoch, self.stages, self.losses = None, {}, {}, {}

    def before_train(self, runner):
        self.start = snapshot(runner)

    def before_train_epoch(self, runner):
        self.stages[runner.epoch] = runner.model.stage

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[runner.iter] = {k: float(v.detach()) for k, v in outputs.items()
                                    if k.startswith('loss')}

    def after_train_epoch(self, runner):
        self.after_epoch[runner.epoch] = snapshot(runner)


def exact_cfg(data_root, teacher, work_dir):
    """configs/dearkd/dearkd_micro_cifar10.py, tiny, deterministic: 10 images, 2 steps per
    epoch, 3 epochs, warm-up then cosine by iteration."""
    cfg = Config.fromfile(osp.join(CONFIGS, 'dearkd', 'dearkd_micro_cifar10.py'))
    cfg.model.student.update(embed_dim=32, num_heads=4, depth=2, num_mhca_blocks=1,
                             drop_path_rate=0.0)
    cfg.model.teacher.update(model=tiny_resnet(), checkpoint=teacher, random_init=False)
    cfg.model.distill.hidden_layer3.inputs.student_features = 'student.blocks.0'
    cfg.data_preprocessor.batch_augments = None
    cfg.model.data_preprocessor = cfg.data_preprocessor
    cfg.train_dataloader.update(batch_size=5, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=data_root, per_class=1,
                                        pipeline=cfg.test_pipeline)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.train_cfg.max_epochs = MAX_EPOCHS
    cfg.randomness = dict(seed=0)
    cfg.default_hooks.distill_stage = dict(type='DistillStageHook', schedule=SCHEDULE)
    cfg.default_hooks.progress_bar.disable = True
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='ResumeProbeHook')]
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.work_dir = str(work_dir)
    return cfg


def train(cfg, folder, *extra):
    cfg.experiment_name = f'resume_exact_{uuid.uuid4().hex[:8]}'
    path = folder / f'{cfg.experiment_name}.py'
    cfg.dump(str(path))
    runner = load_tool('train').main([str(path), *extra])
    return runner, next(h for h in runner.hooks if isinstance(h, ResumeProbeHook))


@pytest.fixture(scope='module')
def runs(cifar_tiny, tmp_path_factory):
    """3 epochs uninterrupted; then epoch 3 again, resumed from the run's epoch_2.pth."""
    root = tmp_path_factory.mktemp('resume_exact')
    teacher = save_tiny_teacher(root / 'teacher.pth')
    full_runner, full = train(exact_cfg(cifar_tiny, teacher, root / 'full'), root)
    checkpoint = str(root / 'full' / f'epoch_{RESUME_EPOCH}.pth')
    resumed_runner, resumed = train(exact_cfg(cifar_tiny, teacher, root / 'resumed'), root,
                                    '--resume', checkpoint)
    return dict(full=full, resumed=resumed, checkpoint=checkpoint, root=root,
                full_runner=full_runner, resumed_runner=resumed_runner)


def assert_same(got, expected, where):
    """Equal nested state: tensors bit for bit, everything else with ==."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and torch.equal(got, expected), where
    elif isinstance(expected, dict):
        assert set(got) == set(expected), (where, sorted(set(got) ^ set(expected)))
        for key, value in expected.items():
            assert_same(got[key], value, f'{where}.{key}')
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_same(a, b, f'{where}[{i}]')
    else:
        assert got == expected, (where, got, expected)


def test_the_resumed_model_holds_the_saved_weights(runs):
    """Every tensor of the student and the connectors, as the uninterrupted run had it at
    the end of epoch 2 (its memory, not its checkpoint: a tensor left out of the
    checkpoint would be missed by comparing with the file)."""
    start = runs['resumed'].start
    saved = runs['full'].after_epoch[RESUME_EPOCH - 1]
    assert (start['epoch'], start['iter']) == (RESUME_EPOCH, RESUME_EPOCH * ITERS_PER_EPOCH)
    assert any('.connectors.' in k for k in saved['model'])
    assert_same(start['model'], saved['model'], 'model')
    # and the file holds every one of them
    file = read_checkpoint(runs['checkpoint'])['state_dict']
    assert set(saved['model']) == set(file)
    assert not [k for k in file if k.startswith('teacher.')]


def test_the_resumed_optimizer_and_schedulers_hold_the_saved_state(runs):
    start = runs['resumed'].start
    saved = runs['full'].after_epoch[RESUME_EPOCH - 1]
    assert_same(start['optimizer'], saved['optimizer'], 'optimizer')
    steps = {float(s['step']) for s in start['optimizer']['state'].values()}
    assert steps == {RESUME_EPOCH * ITERS_PER_EPOCH}
    assert len(start['schedulers']) == 2  # warm-up, cosine
    assert_same(start['schedulers'], saved['schedulers'], 'schedulers')


def test_the_resumed_run_is_in_the_uninterrupted_runs_stage(runs):
    """Epoch 3: the DeiT term has ended (multiplier 0, logged as 0), the hidden term runs."""
    full, resumed = runs['full'], runs['resumed']
    assert full.stages[0] == full.stages[1] == {'distill': 1.0, 'hidden_layer3': 1.0}
    assert full.stages[2] == {'distill': 0.0, 'hidden_layer3': 1.0}
    assert resumed.start['stage'] == resumed.stages[2] == full.stages[2]
    for it in range(RESUME_EPOCH * ITERS_PER_EPOCH, MAX_EPOCHS * ITERS_PER_EPOCH):
        assert full.losses[it]['loss_distill'] == 0.0 and full.losses[it]['loss_hidden_layer3']
    assert all(full.losses[it]['loss_distill'] > 0
               for it in range(RESUME_EPOCH * ITERS_PER_EPOCH))


def test_the_resumed_steps_give_the_uninterrupted_losses_and_weights(runs):
    full, resumed = runs['full'], runs['resumed']
    resumed_iters = list(range(RESUME_EPOCH * ITERS_PER_EPOCH, MAX_EPOCHS * ITERS_PER_EPOCH))
    assert sorted(resumed.losses) == resumed_iters
    for it in resumed_iters:
        assert resumed.losses[it] == pytest.approx(full.losses[it], rel=1e-6, abs=1e-9), it
    end, expected = resumed.after_epoch[MAX_EPOCHS - 1], full.after_epoch[MAX_EPOCHS - 1]
    for key, value in expected['model'].items():
        assert torch.allclose(end['model'][key], value, rtol=1e-5, atol=1e-7), key
    assert_same(end['schedulers'], expected['schedulers'], 'schedulers')


def test_load_from_starts_from_the_files_weights(runs, tmp_path, cifar_tiny):
    """load_from (not a resume): the first step's loss is the uninterrupted run's loss at
    that point, so every weight it reads came from the file."""
    root = runs['root']
    cfg = exact_cfg(cifar_tiny, str(root / 'teacher.pth'), tmp_path / 'work')
    cfg.train_cfg.max_epochs = 1
    _, probe = train(cfg, tmp_path, '--cfg-options', f'load_from={runs["checkpoint"]}')
    saved = runs['full'].after_epoch[RESUME_EPOCH - 1]['model']
    assert_same({k: v for k, v in probe.start['model'].items() if not k.startswith('teacher.')},
                {k: v for k, v in saved.items() if not k.startswith('teacher.')}, 'model')


@pytest.fixture(scope='module')
def distiller():
    cfg = Config.fromfile(osp.join(CONFIGS, 'dearkd', 'dearkd_micro_cifar10.py')).model
    cfg.student.update(embed_dim=32, num_heads=4, depth=2, num_mhca_blocks=1)
    cfg.teacher.update(model=tiny_resnet(), checkpoint=None, random_init=True)
    cfg.distill.hidden_layer3.inputs.student_features = 'student.blocks.0'
    return MODELS.build(cfg)


@pytest.mark.parametrize('change', ['missing', 'unexpected', 'shape'])
def test_loading_is_strict_about_the_student(distiller, change):
    state = {k: v.clone() for k, v in distiller.state_dict().items()}
    key = 'student.head.weight'
    if change == 'missing':
        del state[key]
    elif change == 'unexpected':
        state['student.extra.weight'] = torch.zeros(1)
    else:
        state[key] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r'checkpoint X\.pth does not fit the model'):
        fit_state_dict(distiller, state, 'X.pth')
    # missing connectors alone are accepted (the student is whole)
    state = {k: v for k, v in distiller.state_dict().items() if '.connectors.' not in k}
    fit_state_dict(distiller, state, 'X.pth')
