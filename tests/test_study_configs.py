"""The CIFAR-10 study configs: the equal-epoch data-efficiency students differ from the
micro configs only in schedule, batch and subset; soft distillation differs from hard only
in its loss; each intra-divergence ablation config changes one setting of the paper's."""
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import CONFIGS

STUDY = [('deit', 'deit_micro_cifar10'), ('deit', 'deit_micro_distilled_cifar10'),
         ('dearkd', 'dearkd_micro_cifar10')]


def load(family, name):
    return Config.fromfile(osp.join(CONFIGS, family, f'{name}.py'))


@pytest.mark.parametrize('family,name', STUDY, ids=[n for _, n in STUDY])
def test_equal_epoch_configs_change_only_the_budget(family, name):
    cfg, ref = load(family, f'{name}_2e'), load(family, name)
    assert cfg.model == ref.model
    assert cfg.train_pipeline == ref.train_pipeline
    assert cfg.train_cfg.max_epochs == 2
    assert cfg.train_dataloader.batch_size == 64
    data = cfg.train_dataloader.dataset
    assert (data.subset_ratio, data.subset_seed) == (0.25, 0)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.begin, warmup.end, cosine.begin, cosine.end) == (0, 0.2, 0.2, 2)
    assert cosine.T_max == pytest.approx(1.8)
    assert cfg.optim_wrapper.optimizer == ref.optim_wrapper.optimizer
    if family == 'dearkd':  # the switch counts steps: 2 epochs leave no boundary near 5/6
        stage = cfg.default_hooks.distill_stage
        assert (stage.switch_ratio, stage.by_epoch) == (pytest.approx(250 / 300), False)


def test_soft_differs_from_hard_in_the_loss_only():
    soft = load('deit', 'deit_micro_distilled_soft_cifar10_2e')
    hard = load('deit', 'deit_micro_distilled_cifar10_2e')
    assert soft.model.distill_loss == dict(type='SoftDistillLoss', tau=3.0, reduction='deit')
    assert (soft.model.alpha, hard.model.alpha) == (0.1, 0.5)
    for key in ('distill_loss', 'alpha'):
        soft.model.pop(key), hard.model.pop(key)
    assert soft.model == hard.model
    assert soft.train_dataloader == hard.train_dataloader


ABLATION = {'off': None, 'literal': dict(ep_form='negative'),
            'normalized': dict(normalize=True), 'alpha5': dict(alpha_ep=5.0),
            'spread': dict(margin=0.5, margin_mode='spread')}


@pytest.mark.parametrize('variant', sorted(ABLATION))
def test_each_ablation_config_changes_one_setting(variant):
    paper = load('dearkd', 'df_dearkd_micro_cifar10_div_paper')
    cfg = load('dearkd', f'df_dearkd_micro_cifar10_div_{variant}')
    syn = cfg.synthesis
    assert syn.num_images == 300
    assert [s['iterations'] for s in syn.synthesizer.stages] == [120, 120]
    assert syn.out == f'data/df_div/{variant}' == cfg.train_dataloader.dataset.data_root
    diversity = syn.synthesizer.pop('diversity')
    reference = paper.synthesis.synthesizer.pop('diversity')
    assert (reference.alpha_ep, reference.alpha_triplet, reference.margin) == (50.0, 0.5, 1.0)
    if ABLATION[variant] is None:
        assert diversity is None
    else:
        changed = {k: v for k, v in diversity.items() if reference.get(k) != v}
        assert changed == ABLATION[variant]
    assert syn.synthesizer == paper.synthesis.synthesizer
    assert cfg.model == paper.model


def test_batch_mixing_config_differs_in_the_mixing_only():
    batch = load('deit', 'deit_micro_distilled_cifar10_batchmix')
    pair = load('deit', 'deit_micro_distilled_cifar10')
    assert (batch.data_preprocessor.mix_mode, pair.data_preprocessor.mix_mode) == ('batch',
                                                                                  'pair')
    batch.data_preprocessor.mix_mode = 'pair'
    assert batch.to_dict() == pair.to_dict()
