"""Every config of the zoo trains through tools/train.py (a few iterations on a tiny copy of
CIFAR-10, the teacher randomly initialised) and logs each of its terms; the state a method
keeps (CRD's memory bank) is saved with the checkpoint and comes back on resume."""
import glob
import json
import os.path as osp

import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from conftest import REPO, build_runner, load_tool
from kdzoo.registry import HOOKS

def configs_in(folder):
    return sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', folder,
                                                                   '*.py')))


def has_schedule(config):
    stage = Config.fromfile(osp.join(REPO, config)).default_hooks.get('distill_stage') or {}
    return bool(stage.get('schedule'))


def one_per_method(configs):
    """The micro DeiT config of each method, else its ResNet-8 one: every method trains once
    here; the other configs build and compute their terms in tests/test_pinned_losses.py."""
    chosen = {}
    for config in configs:
        name = osp.basename(config)[:-3]
        method = name.replace('_deit_micro_cifar10', '').replace('_resnet8_cifar10', '')
        if method not in chosen or '_deit_micro_' in name:
            chosen[method] = config
    return sorted(chosen.values())


# One CIFAR-10 config per method (the CIFAR-100 ones are the same losses at other sizes,
# built in tests/test_pinned_losses.py; their schedules: below).
ZOO_CONFIGS = one_per_method(configs_in('zoo'))


@pytest.mark.parametrize('config', [c for c in configs_in('zoo/cifar100') if has_schedule(c)])
def test_cifar100_warm_ups_fit_their_schedule(config):
    """DKD's and ReviewKD's warm-ups: the term ramps from 0.05 at the first epoch to 1 at
    epoch 20 and stays at 1 to the last of the 240, and the hook accepts the schedule."""
    from types import SimpleNamespace

    from kdzoo.registry import HOOKS
    cfg = Config.fromfile(osp.join(REPO, config))
    hook = HOOKS.build(cfg.default_hooks.distill_stage)
    [term] = [n for n, t in cfg.model.distill.items() if t is not None]
    hook._check(SimpleNamespace(terms={term: None}), 'epochs', cfg.train_cfg.max_epochs)

    def at(epoch):
        runner = SimpleNamespace(max_epochs=cfg.train_cfg.max_epochs, epoch=epoch)
        return hook.multipliers(runner, [term])[term]

    assert at(0) == pytest.approx(0.05) and at(10) == pytest.approx(0.525)
    assert at(20) == at(239) == 1.0
    assert all(at(e) < at(e + 1) for e in range(19))
N_TRAIN = 20  # 2 images per class


def settings(config, data_root, max_epochs=1):
    """{key: value} that make ``config`` a few iterations on ``data_root``."""
    cfg = Config.fromfile(osp.join(REPO, config))
    out = {f'{loader}.{key}': value
           for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
           for key, value in (('dataset.data_root', data_root), ('num_workers', 0),
                              ('persistent_workers', False))}
    out.update({'train_dataloader.dataset.subset_ratio': 1.0,
                'train_dataloader.dataset.per_class': 2, 'train_dataloader.batch_size': 10,
                'train_cfg.max_epochs': max_epochs, 'train_cfg.val_interval': 100,
                'default_hooks.logger.interval': 1,
                'default_hooks.progress_bar.disable': True,
                'env_cfg.dist_cfg.backend': 'gloo'})
    if cfg.model.get('teacher'):
        out.update({'model.teacher.checkpoint': None, 'model.teacher.random_init': True})
    for name, term in (cfg.model.get('distill') or {}).items():
        if term is not None and 'num_samples' in term['loss']:
            out[f'model.distill.{name}.loss.num_samples'] = N_TRAIN
    return out


def options(config, data_root):
    return [f'{k}={v}' for k, v in settings(config, data_root).items()]


def terms_of(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    names = [n for n, t in (cfg.model.get('distill') or {}).items() if t is not None]
    if cfg.model.get('distill_loss'):
        names.append('distill')
    return names


def logged(work_dir):
    [path] = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize('config', ZOO_CONFIGS)
def test_each_zoo_config_trains_and_logs_its_terms(config, cifar_tiny, tmp_path):
    work_dir = str(tmp_path / 'work')
    load_tool('train').main([config, '--work-dir', work_dir, '--cfg-options',
                             *options(config, cifar_tiny)])
    steps = [r for r in logged(work_dir) if 'loss' in r]
    assert len(steps) == N_TRAIN // 10
    for name in terms_of(config):
        values = [r[f'loss_{name}'] for r in steps]
        assert all(v == v and abs(v) < 1e6 for v in values), (name, values)
        assert any(v != 0 for v in values), f'term {name} was never computed'
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))


CRD_BANKS = ('memory_student', 'memory_teacher', 'log_z')


@HOOKS.register_module(force=True)
class _BankAtStart(Hook):
    """Keeps the CRD term's state as the run starts training (after a resume's load)."""
    seen = {}

    def before_train(self, runner):
        loss = runner.model.terms.crd.loss
        _BankAtStart.seen = {k: getattr(loss, k).detach().clone() for k in CRD_BANKS}


def test_crd_bank_is_saved_and_resumed(cifar_tiny, tmp_path):
    config = 'configs/zoo/crd_resnet8_cifar10.py'
    work_dir = str(tmp_path / 'work')
    load_tool('train').main([config, '--work-dir', work_dir, '--cfg-options',
                             *options(config, cifar_tiny), 'train_cfg.max_epochs=2'])
    saved = {k: torch.load(osp.join(work_dir, f'epoch_{e}.pth'), weights_only=True)[
        'state_dict'] for e, k in ((1, 'e1'), (2, 'e2'))}
    bank = {k: saved['e1'][f'terms.crd.loss.{k}'] for k in CRD_BANKS}
    # The first epoch's steps wrote their samples' rows and estimated Z.
    assert torch.isfinite(bank['log_z']).all()
    assert not torch.equal(bank['memory_student'], saved['e2']['terms.crd.loss.memory_student'])
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict(settings(config, cifar_tiny, max_epochs=2))
    cfg.work_dir = str(tmp_path / 'resumed')
    cfg.experiment_name = f'crd_resume_{uuid.uuid4().hex[:8]}'
    cfg.resume, cfg.load_from = True, osp.join(work_dir, 'epoch_1.pth')
    cfg.custom_hooks = [dict(type='_BankAtStart')]
    build_runner(cfg).train()
    for key in CRD_BANKS:
        torch.testing.assert_close(_BankAtStart.seen[key], bank[key], rtol=0, atol=0,
                                   msg=f'{key} was not resumed')
