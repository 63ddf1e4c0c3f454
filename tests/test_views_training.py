"""A teacher's view in real training runs (tools/train.py, tools/dist_train.sh): a 16 px
student with its teacher at 32 px of the same crop. At every (epoch, position) the teacher
sees the same mixed view whether one process trains or two (gloo), and whether the run was
resumed or not.

A probe hook (a module the configs import through ``custom_imports``) saves, per training
step, the replay keys and the batch the teacher network was given.
"""
import os
import textwrap

import pytest
import torch
from mmengine.config import Config

from conftest import build_runner, save_tiny_teacher, write_tiny_distill_config
from test_distributed import dist_train

PER_CLASS, EPOCHS, B = 2, 2, 4  # 20 images = 10 pairs: 3 steps an epoch in either run
PROBE = 'kdzoo_views_probe'

SETTINGS = '''
model['student'].update(img_size=16)
model['teacher'].update(view=dict(size=32))
model['distill_loss'] = dict(type='SoftDistillLoss')
env_cfg = dict(precision='fp32')
_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Resize', scale=16),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5),
    dict(type='RandomErasing', erase_prob=0.5, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3),
    dict(type='PackInputs'),
]
train_dataloader['dataset']['pipeline'] = _pipeline
val_dataloader['dataset']['pipeline'] = [dict(type='LoadImageFromFile'),
                                         dict(type='Resize', scale=16),
                                         dict(type='PackInputs')]
'''

PROBE_SOURCE = '''
"""Saves the teacher's inputs per training step (see tests/test_views_training.py)."""
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from kdzoo.registry import HOOKS


@HOOKS.register_module(force=True)
class ViewProbe(Hook):
    priority = 'LOWEST'

    def __init__(self, out):
        self.out = out
        self.steps, self.seen, self.batch = [], None, None

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model

        def teacher_input(module, args):
            if module.training is False and self.batch is not None and self.seen is None:
                self.seen = args[0].detach().clone()

        model.teacher.model.register_forward_pre_hook(teacher_input)

        def batch(module, args, kwargs, output):
            if kwargs.get('training', args[1] if len(args) > 1 else False):
                self.batch = output

        model.data_preprocessor.register_forward_hook(batch, with_kwargs=True)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        samples = self.batch['data_samples']
        self.steps.append(dict(
            keys=torch.tensor([list(s.metainfo['replay']) for s in samples]),
            inputs=self.batch['inputs'].detach().clone(), teacher=self.seen))
        self.seen = self.batch = None

    def after_train(self, runner):
        torch.save(dict(steps=self.steps), self.out % (get_rank(), runner.epoch))
'''


@pytest.fixture(scope='module')
def setup(cifar_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp('views_training')
    teacher = save_tiny_teacher(root / 'teacher.pth', seed=3)
    base = write_tiny_distill_config(root / 'tiny.py', cifar_tiny, teacher_checkpoint=teacher,
                                     per_class=PER_CLASS, batch_size=2 * B,
                                     max_epochs=EPOCHS, extra=SETTINGS)
    probes = root / 'probes'
    probes.mkdir()
    (probes / f'{PROBE}.py').write_text(PROBE_SOURCE)

    def config(name, batch_size):
        path = root / f'{name}.py'
        path.write_text(textwrap.dedent(f'''
            _base_ = [{base!r}]
            train_dataloader = dict(batch_size={batch_size})
            custom_imports = dict(imports=[{PROBE!r}], allow_failed_imports=False)
            custom_hooks = [dict(type='ViewProbe', out={str(root / name)!r} + '_rank%d_e%d.pt')]
        '''))
        return str(path)

    return dict(root=root, probes=str(probes), one=config('one', 2 * B), two=config('two', B),
                resumed=config('resumed', 2 * B))


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def run_here(setup, name, max_epochs=EPOCHS, resume=False):
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(setup['probes'])
        cfg = Config.fromfile(setup[name])
        cfg.work_dir = str(setup['root'] / f'{name}_work')
        cfg.experiment_name = f'views_{name}_{max_epochs}_{resume}'
        cfg.train_cfg.max_epochs = max_epochs
        cfg.resume = resume
        build_runner(cfg).train()
    return load(str(setup['root'] / f'{name}_rank0_e{max_epochs}.pt'))


def by_position(runs):
    out = {}
    for run in runs:
        for step in run['steps']:
            for i, (_, epoch, position, sample_id) in enumerate(step['keys'].tolist()):
                assert (epoch, position) not in out
                out[epoch, position] = (sample_id, step['teacher'][i], step['inputs'][i])
    return out


@pytest.fixture(scope='module')
def one(setup):
    return run_here(setup, 'one')


def test_the_teacher_sees_its_view_at_its_size(one):
    step = one['steps'][0]
    assert tuple(step['inputs'].shape[-2:]) == (16, 16)
    assert tuple(step['teacher'].shape[-2:]) == (32, 32)
    # The view brought to the student's size is close to the student's (mixed) image: the
    # same crop, flip, augmentations and mixing, resampled (bilinear).
    small = torch.nn.functional.interpolate(step['teacher'], size=(16, 16), mode='bilinear',
                                            align_corners=False)
    err = (small - step['inputs']).abs().mean() / step['inputs'].abs().mean()
    assert err < 0.05, err
    flipped = (small.flip(-1) - step['inputs']).abs().mean() / step['inputs'].abs().mean()
    assert flipped > 4 * err


def test_two_processes_give_the_teacher_the_same_views(setup, one):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('PYTHONPATH', setup['probes'], prepend=os.pathsep)
        dist_train(setup['two'], setup['root'] / 'two_work', setup['root'])
    two = [load(str(setup['root'] / f'two_rank{r}_e{EPOCHS}.pt')) for r in range(2)]
    mine, ref = by_position(two), by_position([one])
    assert sorted(mine) == sorted(ref)
    for key, (sample_id, teacher, inputs) in ref.items():
        assert mine[key][0] == sample_id
        assert torch.equal(mine[key][1], teacher), key
        assert torch.equal(mine[key][2], inputs), key


def test_a_resumed_run_gives_the_teacher_the_same_views(setup, one):
    run_here(setup, 'resumed', max_epochs=1)
    resumed = run_here(setup, 'resumed', max_epochs=EPOCHS, resume=True)
    ref = by_position([one])
    got = by_position([resumed])
    assert sorted(got) == [k for k in sorted(ref) if k[0] == EPOCHS - 1]
    for key, (sample_id, teacher, _) in got.items():
        assert torch.equal(teacher, ref[key][1]), key
