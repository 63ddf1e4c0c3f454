"""The Distiller's named terms: bindings, hidden terms through connectors, one teacher
forward per step, stages as multipliers, build-time errors."""
import pytest
import torch
import torch.nn as nn
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


def hidden(student_layer='blocks.0', teacher_layer='layer3', weight=2.0, **kw):
    term = dict(loss=dict(type='HiddenMSELoss'),
                inputs=dict(student_features=f'student.{student_layer}',
                            teacher_features=f'teacher.{teacher_layer}'),
                connectors=dict(student_features=dict(type='Aligner')), weight=weight)
    term.update(kw)
    return term


def distiller_cfg(distill=None, **kw):
    cfg = dict(
        type='Distiller', student=student(),
        teacher=dict(type='Teacher', random_init=True,
                     model=dict(type='CifarResNet', depth=8, widths=(8, 16, 32),
                                num_classes=10)),
        criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
        distill_loss=dict(type='HardDistillLoss'), alpha=0.5,
        distill=dict(hidden_l3=hidden()) if distill is None else distill,
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=MEAN, std=STD,
                               to_rgb=True))
    cfg.update(kw)
    return cfg


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    samples = [DataSample().set_gt_label(i % 10) for i in range(n)]
    return x, samples


def computed(losses):
    """The loss keys that were computed: terms that are off are logged as exactly 0."""
    return {k for k, v in losses.items() if k == 'loss_cls' or v.item() != 0}


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_stage1_terms_and_one_teacher_forward():
    torch.manual_seed(0)
    model = MODELS.build(distiller_cfg()).train()
    calls = count_calls(model.teacher.model)
    x, samples = batch()
    losses = model.loss(x, samples)
    assert set(losses) == {'loss_cls', 'loss_distill', 'loss_hidden_l3'}
    assert len(calls) == 1
    # The hidden term is weight * MSE(aligner(student block 0), teacher layer3), recomputed
    # here from separate forwards.
    feats = {}
    model.student.blocks[0].register_forward_hook(lambda m, i, o: feats.__setitem__('s', o))
    model.teacher.model.layer3.register_forward_hook(lambda m, i, o: feats.__setitem__('t', o))
    model.student.forward_heads(x)
    model.teacher_logits(x)
    aligner = model.terms.hidden_l3.connectors.student_features
    aligned = aligner(feats['s'], size=feats['t'].shape[-2:])
    expected = 2.0 * F.mse_loss(aligned, feats['t'])
    assert torch.allclose(losses['loss_hidden_l3'], expected, rtol=1e-5)
    # Sizes filled in from the layers: block 0's width, 2 prefix tokens, layer3's width.
    assert aligner.dwconv.in_channels == 24 and aligner.num_prefix_tokens == 2
    assert aligner.proj.out_channels == 32


def test_stage2_runs_no_teacher_and_trains_no_connector():
    model = MODELS.build(distiller_cfg()).train()
    model.set_stage({})
    calls = count_calls(model.teacher.model)
    x, samples = batch()
    losses = model.loss(x, samples)
    assert set(losses) == {'loss_cls', 'loss_distill', 'loss_hidden_l3'}
    assert computed(losses) == {'loss_cls'} and not calls
    assert not model.distill_active
    losses = {k: v for k, v in losses.items() if k == 'loss_cls'}
    losses['loss_cls'].backward()
    assert all(p.grad is None for p in model.terms.parameters())
    assert model.student.head_dist.weight.grad is not None
    # Nothing recorded stays alive in stage 2.
    assert model.student_recorder.outputs == {} and model.teacher_recorder.outputs == {}


@pytest.mark.parametrize('idle', ['labels', None])
def test_idle_distillation_head(idle):
    torch.manual_seed(0)
    model = MODELS.build(distiller_cfg(idle_dist_head=idle)).train()
    model.set_stage({})
    x, samples = batch()
    labels = torch.tensor([s.gt_label.item() for s in samples])
    cls_logits, dist_logits = model.heads(x)
    ce = model.criterion
    expected = ce(cls_logits, labels)
    if idle == 'labels':
        expected = (expected + ce(dist_logits, labels)) / 2
    assert torch.allclose(model.loss(x, samples)['loss_cls'], expected)


def test_one_term_off_keeps_the_others_and_mix_returns_the_base_weight():
    torch.manual_seed(0)
    model = MODELS.build(distiller_cfg()).train()
    x, samples = batch()
    full = model.loss(x, samples)
    model.set_stage(dict(hidden_l3=1.0))  # the DeiT term off, the hidden term on
    part = model.loss(x, samples)
    assert computed(part) == {'loss_cls', 'loss_hidden_l3'}
    assert torch.allclose(part['loss_hidden_l3'], full['loss_hidden_l3'])
    # No mixed term active: the base weighs 1, and nothing reads the distillation head,
    # so it learns from the labels (idle_dist_head='labels').
    cls_logits, dist_logits = model.heads(x)
    labels = torch.tensor([s.gt_label.item() for s in samples])
    base = (model.criterion(cls_logits, labels) + model.criterion(dist_logits, labels)) / 2
    assert torch.allclose(part['loss_cls'], base)
    model.set_stage(dict(distill=0.5, hidden_l3=0.25))  # ramped weights
    ramp = model.loss(x, samples)
    assert torch.allclose(ramp['loss_cls'], (1 - 0.25) * model.criterion(cls_logits, labels))
    assert torch.allclose(ramp['loss_distill'], 0.5 * full['loss_distill'])
    assert torch.allclose(ramp['loss_hidden_l3'], 0.25 * full['loss_hidden_l3'])


def test_hidden_only_and_several_terms_share_one_teacher_forward():
    distill = dict(h0=hidden('blocks.0', 'layer2', weight=1.0),
                   h1=hidden('blocks.1', 'layer3', weight=1.0,
                             connectors=dict(student_features=dict(type='Aligner',
                                                                   teacher_channels=32))))
    model = MODELS.build(distiller_cfg(distill, distill_loss=None)).train()
    calls = count_calls(model.teacher.model)
    losses = model.loss(*batch())
    assert set(losses) == {'loss_cls', 'loss_h0', 'loss_h1'}
    assert len(calls) == 1 and model.distill_active
    assert model.terms.h0.connectors.student_features.proj.out_channels == 16


def test_only_the_layers_of_active_terms_are_recorded():
    distill = dict(h0=hidden('blocks.0', 'layer2'), h1=hidden('blocks.1', 'layer3'))
    model = MODELS.build(distiller_cfg(distill, distill_loss=None)).train()
    seen = []
    model.student_recorder.outputs = {}
    original = model.student_recorder._keep
    model.student_recorder._keep = lambda name, value, what: (
        seen.append(name) if model.student_recorder.active and name in
        model.student_recorder.wanted else None, original(name, value, what))
    model.set_stage(dict(h1=1.0))
    assert computed(model.loss(*batch())) == {'loss_cls', 'loss_h1'}
    assert seen == ['blocks.1']


def test_input_port_and_label_sources():
    seen = {}

    class Probe(nn.Module):
        def forward(self, features, labels, targets, logits):
            seen.update(features=features, labels=labels, targets=targets, logits=logits)
            return features.sum() * 0

    MODELS.register_module(name='ProbeLoss', module=Probe, force=True)
    try:
        distill = dict(probe=dict(loss=dict(type='ProbeLoss'),
                                  inputs=dict(features='teacher.layer3.0:input',
                                              logits='student.cls_logits')))
        model = MODELS.build(distiller_cfg(distill, distill_loss=None)).train()
        x, samples = batch()
        model.loss(x, samples)
    finally:
        MODELS._module_dict.pop('ProbeLoss')
    assert seen['features'].shape[1] == 16  # the input of layer3 is layer2's output
    assert seen['labels'].tolist() == [0, 1, 2, 3]
    assert torch.equal(seen['targets'], seen['labels'])
    assert seen['logits'].shape == (4, 10)


@pytest.mark.parametrize('term,owner,listed', [
    (hidden('block.0', 'layer3'), 'student', 'blocks.0.attn'),
    (hidden('blocks.0', 'model.layer3'), 'teacher', 'layer2.0.conv1'),
])
def test_wrong_layer_names_fail_at_build_with_the_available_names(term, owner, listed):
    with pytest.raises(ValueError) as err:
        MODELS.build(distiller_cfg(dict(h=term)))
    msg = str(err.value)
    assert f'{owner} has no layer named' in msg and listed in msg


@pytest.mark.parametrize('term,match', [
    (dict(inputs=dict(student_features='student.blocks.0')), 'not bound'),
    (dict(wieght=1.0), 'unknown keys'),
    (dict(inputs=dict(student_features='student.blocks.0', teacher_features='teacher.layer3',
                      extra='labels')), 'not arguments of its forward'),
    (dict(inputs=dict(student_features='pupil.blocks.0', teacher_features='teacher.layer3')),
     'unknown source'),
    (dict(inputs=dict(student_features='student.blocks.0:grad',
                      teacher_features='teacher.layer3')), 'port'),
    (dict(connectors=dict(teacher_features=dict(type='Aligner'), labels=dict(type='Aligner'))),
     'not one of its inputs'),
])
def test_bad_term_configs_fail_at_build(term, match):
    cfg = dict(loss=dict(type='HiddenMSELoss'),
               inputs=dict(student_features='student.blocks.0', teacher_features='teacher.layer3'))
    cfg.update(term)
    if 'inputs' in term and 'teacher_features' not in term['inputs']:
        cfg['inputs'] = term['inputs']
    with pytest.raises(ValueError, match=match):
        MODELS.build(distiller_cfg(dict(h=cfg), distill_loss=None))


def test_bad_names_and_stages():
    with pytest.raises(ValueError, match='identifier'):
        MODELS.build(distiller_cfg(dict(cls=hidden())))
    with pytest.raises(ValueError, match='also made by distill_loss'):
        MODELS.build(distiller_cfg(dict(distill=hidden())))
    with pytest.raises(ValueError, match='no distillation head'):
        MODELS.build(distiller_cfg(dict(d=dict(loss=dict(type='HardDistillLoss'),
                                               inputs=dict(student_logits='student.dist_logits'))),
                                   student=student(distilled=False)))
    with pytest.raises(ValueError, match='has no teacher'):
        MODELS.build(distiller_cfg(teacher=None))
    with pytest.raises(TypeError, match='named terms'):
        MODELS.build(distiller_cfg(hidden_distill=[]))
    with pytest.raises(TypeError, match="now called 'student'"):
        MODELS.build(dict(type='Classifier', model=student()))
    model = MODELS.build(distiller_cfg())
    with pytest.raises(ValueError, match=r"the terms are \['distill', 'hidden_l3'\]"):
        model.set_stage(dict(hiden_l3=1.0))
    with pytest.raises(ValueError, match='>= 0'):
        model.set_stage(dict(distill=-1))


def test_checkpoints_from_before_the_rename_load():
    torch.manual_seed(0)
    model = MODELS.build(distiller_cfg())
    state = model.state_dict()
    legacy = {}
    for key, value in state.items():
        key = key.replace('student.', 'model.', 1) if key.startswith('student.') else key
        key = key.replace('terms.hidden_l3.connectors.student_features.', 'aligners.0.')
        legacy[key] = value
    assert any(k.startswith('aligners.0.') for k in legacy)
    torch.manual_seed(1)
    fresh = MODELS.build(distiller_cfg())
    fresh.load_state_dict(legacy)  # strict
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_every_trainable_parameter_stays_in_the_graph_when_terms_are_off():
    """So that DDP needs no search for unused parameters (find_unused_parameters=False)."""
    for idle in ('labels', None):
        model = MODELS.build(distiller_cfg(idle_dist_head=idle)).train()
        model.set_stage({})
        losses = model.loss(*batch())
        assert losses['loss_hidden_l3'] == 0
        sum(losses.values()).backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing
        assert all(torch.count_nonzero(p.grad) == 0 for p in model.terms.parameters())
