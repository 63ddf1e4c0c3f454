"""The CIFAR-10 comparison configs at 10% and 100% of the training images have the same
budget in optimizer steps, the same warm-up and the same stage-1 share."""
import math
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import CONFIGS

CIFAR10_TRAIN_IMAGES = 50000
PAIRS = [('deit', 'deit_micro_cifar10'), ('deit', 'deit_micro_distilled_cifar10'),
         ('dearkd', 'dearkd_micro_cifar10')]


def load(family, name):
    return Config.fromfile(osp.join(CONFIGS, family, f'{name}.py'))


def ratio(cfg):
    return cfg.train_dataloader.dataset.get('subset_ratio', 1.0)


def steps_per_epoch(cfg):
    images = round(CIFAR10_TRAIN_IMAGES * ratio(cfg))
    return math.ceil(images / cfg.train_dataloader.batch_size)


def schedule_in_steps(cfg):
    """(warm-up end, cosine end) in optimizer steps."""
    per_epoch = steps_per_epoch(cfg)
    warmup, cosine = cfg.param_scheduler
    scale = per_epoch if warmup.get('by_epoch', True) else 1
    return warmup.end * scale, cosine.end * (per_epoch if cosine.get('by_epoch', True) else 1)


def stage1_share(cfg):
    hook = cfg.default_hooks.distill_stage
    if hook.get('by_epoch', True):
        return round(hook.switch_ratio * cfg.train_cfg.max_epochs) / cfg.train_cfg.max_epochs
    return hook.switch_ratio


@pytest.mark.parametrize('family,name', PAIRS, ids=[p[1] for p in PAIRS])
def test_full_data_config_has_the_subset_budget(family, name):
    subset, full = load(family, name), load(family, f'{name}_full')
    assert ratio(subset) == pytest.approx(0.1)
    assert ratio(full) == 1.0
    subset_steps = steps_per_epoch(subset) * subset.train_cfg.max_epochs
    full_steps = steps_per_epoch(full) * full.train_cfg.max_epochs
    assert (subset_steps, full_steps) == (800, 782)
    assert schedule_in_steps(subset) == (80, subset_steps)
    assert schedule_in_steps(full) == (80, full_steps)
    assert full.model == subset.model
    assert full.optim_wrapper == subset.optim_wrapper
    assert full.train_cfg.val_interval == full.train_cfg.max_epochs
    if family == 'dearkd':
        assert stage1_share(full) == pytest.approx(stage1_share(subset)) == 0.85
