"""EarlyDistiller: hidden-layer pairs, one teacher forward per step, stage 2 without it."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

import kdzoo  # noqa: F401
from kdzoo.registry import MODELS

torch.set_num_threads(1)

MEAN, STD = [125.3, 123.0, 113.9], [51.6, 50.8, 51.3]


def student(**kw):
    cfg = dict(type='DearKD', arch=None, embed_dim=24, num_heads=4, depth=2, num_mhca_blocks=1,
               img_size=32, patch_size=4, num_classes=10)
    cfg.update(kw)
    return cfg


def early_cfg(hidden=None, **kw):
    cfg = dict(
        type='EarlyDistiller', model=student(),
        teacher=dict(type='Teacher', model=dict(type='CifarResNet', depth=8, widths=(8, 16, 32),
                                                num_classes=10)),
        criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
        distill_loss=dict(type='HardDistillLoss'), alpha=0.5,
        hidden_distill=hidden if hidden is not None else [
            dict(name='l3', student_layer='blocks.0', teacher_layer='layer3', weight=2.0)],
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=MEAN, std=STD,
                               to_rgb=True))
    cfg.update(kw)
    return cfg


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    samples = [DataSample().set_gt_label(i % 10) for i in range(n)]
    return x, samples


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_stage1_terms_and_one_teacher_forward():
    torch.manual_seed(0)
    model = MODELS.build(early_cfg()).train()
    calls = count_calls(model.teacher.model)
    x, samples = batch()
    losses = model.loss(x, samples)
    assert set(losses) == {'loss_cls', 'loss_distill', 'loss_hidden_l3'}
    assert len(calls) == 1
    # The hidden term is weight * MSE(aligner(student block 0), teacher layer3), recomputed
    # here from separate forwards.
    feats = {}
    model.model.blocks[0].register_forward_hook(lambda m, i, o: feats.__setitem__('s', o))
    model.teacher.model.layer3.register_forward_hook(lambda m, i, o: feats.__setitem__('t', o))
    model.model.forward_heads(x)
    model.teacher_logits(x)
    aligned = model.aligners[0](feats['s'], size=feats['t'].shape[-2:])
    expected = 2.0 * F.mse_loss(aligned, feats['t'])
    assert torch.allclose(losses['loss_hidden_l3'], expected, rtol=1e-5)
    assert model.aligners[0].proj.out_channels == 32  # width of layer3, found by dry forward


def test_stage2_runs_no_teacher_and_trains_no_aligner():
    model = MODELS.build(early_cfg()).train()
    model.distill_active = False
    calls = count_calls(model.teacher.model)
    x, samples = batch()
    losses = model.loss(x, samples)
    assert set(losses) == {'loss_cls'} and not calls
    losses['loss_cls'].backward()
    assert all(p.grad is None for p in model.aligners.parameters())
    assert model.model.head_dist.weight.grad is not None
    # Nothing recorded stays alive in stage 2.
    assert model.student_recorder.outputs == {} and model.teacher_recorder.outputs == {}


@pytest.mark.parametrize('target', ['labels', None])
def test_stage2_distillation_head_target(target):
    torch.manual_seed(0)
    model = MODELS.build(early_cfg(stage2_dist_target=target)).train()
    model.distill_active = False
    x, samples = batch()
    labels = torch.tensor([s.gt_label.item() for s in samples])
    cls_logits, dist_logits = model.heads(x)
    ce = model.criterion
    expected = ce(cls_logits, labels)
    if target == 'labels':
        expected = (expected + ce(dist_logits, labels)) / 2
    assert torch.allclose(model.loss(x, samples)['loss_cls'], expected)


def test_hidden_only_and_several_pairs():
    hidden = [dict(student_layer='blocks.0', teacher_layer='layer2'),
              dict(student_layer='blocks.1', teacher_layer='layer3',
                   aligner=dict(type='Aligner', teacher_channels=32),
                   loss=dict(type='HiddenMSELoss'))]
    model = MODELS.build(early_cfg(hidden, distill_loss=None)).train()
    calls = count_calls(model.teacher.model)
    losses = model.loss(*batch())
    assert set(losses) == {'loss_cls', 'loss_hidden_0', 'loss_hidden_1'}
    assert len(calls) == 1 and model.distill_active
    assert model.aligners[0].proj.out_channels == 16


@pytest.mark.parametrize('pair,owner,listed', [
    (dict(student_layer='block.0', teacher_layer='layer3'), 'student', 'blocks.0.attn'),
    (dict(student_layer='blocks.0', teacher_layer='model.layer3'), 'teacher', 'layer2.0.conv1'),
])
def test_wrong_layer_names_fail_at_build_with_the_available_names(pair, owner, listed):
    with pytest.raises(ValueError) as err:
        MODELS.build(early_cfg([pair]))
    msg = str(err.value)
    assert f'{owner} has no layer named' in msg and listed in msg


def test_bad_pair_configs():
    with pytest.raises(ValueError, match='missing keys'):
        MODELS.build(early_cfg([dict(student_layer='blocks.0')]))
    with pytest.raises(ValueError, match='unknown keys'):
        MODELS.build(early_cfg([dict(student_layer='blocks.0', teacher_layer='layer3',
                                     wieght=1.0)]))
    with pytest.raises(ValueError, match='unique'):
        MODELS.build(early_cfg([dict(student_layer='blocks.0', teacher_layer='layer3', name='a'),
                                dict(student_layer='blocks.1', teacher_layer='layer2',
                                     name='a')]))
