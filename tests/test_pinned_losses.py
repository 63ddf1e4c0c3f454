"""Every shipped config gives the loss terms pinned in tests/data/pinned_losses.json.

The pins were taken with the code of before distillation became named terms, so they
show that the named terms changed no loss; with one exception:
configs/deit/deit_micro_distilled_soft_cifar10_2e.py came later and was pinned with the
code of its own commit (25437d4), so its pin guards against later changes only, not
against the refactoring. Configs marked ``same_as`` build the model of another config
and share its pin.

Weights are set from the parameter's name alone (a seed per name), so the networks are the
same whatever order they are built in; the inputs, labels and mixed targets are fixed.
Stage 2 is pinned for the configs with a stage schedule. The zoo's configs
(configs/zoo) were pinned with the code of the commit that added them. Losses that draw
(masks, sampled negatives or patches) draw from torch's generator, seeded before the model
is built and before each loss; the samples carry their dataset indices. Pins taken since
the zoo use a batch of 4 (``batch``: relations over triplets need 3 samples), the older 2.
"""
import json
import os.path as osp
import zlib

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

from conftest import REPO
from kdzoo.registry import MODELS

PINS = json.load(open(osp.join(REPO, 'tests', 'data', 'pinned_losses.json')))
PINNED = sorted(k for k, v in PINS.items() if 'values' in v)


def init_by_name(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=torch.Generator().manual_seed(
                zlib.crc32(name.encode())))
            if p.dim() >= 2:
                p.copy_(r / (p[0].numel() ** 0.5))
            else:
                p.copy_(0.1 * r + (1.0 if name.endswith('weight') else 0.0))


def fixed_batch(size, num_classes, n=2):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, size, size, generator=g)
    labels = [DataSample(metainfo=dict(sample_idx=7 * i + 3)).set_gt_label(i * 3 % num_classes)
              for i in range(n)]
    # Mixed samples keep their label beside the mixed scores, as after mixup/cutmix.
    scores = [DataSample(metainfo=dict(sample_idx=7 * i + 3)).set_gt_label(
        i * 3 % num_classes).set_gt_score(torch.softmax(torch.randn(num_classes, generator=g), 0))
        for i in range(n)]
    return x, dict(labels=labels, scores=scores)


def teacher_views(model, x):
    """The batch at each teacher's view size (bilinear), for teachers with a view."""
    views = {}
    for network, teacher in getattr(model, '_teacher_modules', dict)().items():
        if getattr(teacher, 'view', None) is not None:
            views[network] = torch.nn.functional.interpolate(
                x, size=teacher.view, mode='bilinear', align_corners=False)
    return views or None


def build(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    model_cfg = cfg.model
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    for teacher in [model_cfg.get('teacher')] + list((model_cfg.get('teachers') or {}).values()):
        if teacher:
            # bf16 (the ImageNet teachers' GPU setting) rounds the teacher, not the terms.
            teacher.update(checkpoint=None, pretrained=False, random_init=True, bf16=False)
    model_cfg.student.pop('pretrained', None)
    DefaultScope.get_instance(f'pin_{zlib.crc32(config.encode())}', scope_name='kdzoo')
    torch.manual_seed(0)
    return MODELS.build(model_cfg).eval()


def test_every_config_with_a_model_is_pinned():
    import glob
    configs = sorted(osp.relpath(p, REPO) for folder in ('de*', 'zoo', 'zoo/cifar100', 'zoo/imagenet')
                     for p in glob.glob(osp.join(REPO, 'configs', folder, '*.py')))
    assert configs == sorted(PINS)


@pytest.mark.parametrize('config', PINNED)
def test_loss_terms_match_the_pinned_values(config):
    pin = PINS[config]
    model = build(config)
    init_by_name(model)
    x, samples = fixed_batch(pin['size'], model.num_classes, pin.get('batch', 2))
    for key, expected in pin['values'].items():
        stage, targets = key.split('/')
        if hasattr(model, 'set_stage'):
            model.set_stage(None if stage == 'stage1' else {})
        torch.manual_seed(0)
        with torch.no_grad():
            views = teacher_views(model, x)
            losses = (model.loss(x, samples[targets]) if views is None else
                      model.loss(x, samples[targets], views))
            got = {k: float(v) for k, v in losses.items()}
        # Terms that are off are logged as 0; the pins list the terms that were computed.
        assert set(expected) <= set(got), key
        assert all(got[k] == 0.0 for k in set(got) - set(expected)), key
        for term, value in expected.items():
            assert got[term] == pytest.approx(value, rel=1e-5, abs=1e-7), (key, term)


@pytest.mark.parametrize('config', sorted(k for k, v in PINS.items() if 'same_as' in v))
def test_configs_sharing_a_pin_build_the_same_model(config):
    def model_cfg(path):
        cfg = Config.fromfile(osp.join(REPO, path))
        return cfg.model.to_dict()
    assert model_cfg(config) == model_cfg(PINS[config]['same_as'])
