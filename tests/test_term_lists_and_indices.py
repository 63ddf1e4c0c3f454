"""The term vocabulary for the zoo's methods: an argument bound to a list of sources
receives their tensors in order (through a connector over all of them, whose widths and
sizes are filled in as lists), the ``indices`` source gives each sample's dataset index,
and per-sample state must fit the training set."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.structures import DataSample

import kdzoo  # noqa: F401
from kdzoo.engine.data_check_hook import check_sample_state
from kdzoo.registry import MODELS

torch.set_num_threads(1)

MEAN, STD = [125.3, 123.0, 113.9], [51.6, 50.8, 51.3]
SEEN = {}


@MODELS.register_module(force=True)
class _ListProbeLoss(nn.Module):
    """Keeps what it was given; returns a number that depends on every tensor."""

    def forward(self, student_features, teacher_features):
        SEEN.update(student=student_features, teacher=teacher_features)
        return sum(s.float().mean() for s in student_features) + sum(
            t.float().mean() for t in teacher_features)


@MODELS.register_module(force=True)
class _ListProbeConnector(nn.Module):
    """A 1x1 convolution per level to the other network's width, resized to its size."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        SEEN.update(in_channels=in_channels, out_channels=out_channels)
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 1) for i, o in zip(in_channels,
                                                                      out_channels))

    def forward(self, features, size=None):
        SEEN['size'] = size
        return [nn.functional.interpolate(conv(f), size=tuple(s)) for conv, f, s in
                zip(self.convs, features, size)]


@MODELS.register_module(force=True)
class _IndexedLoss(nn.Module):
    num_samples = 7

    def forward(self, student_logits, indices):
        SEEN['indices'] = indices
        return student_logits.float().mean() * 0


def distiller(distill, student_net=None):
    return MODELS.build(dict(
        type='Distiller',
        student=student_net or dict(type='CifarResNet', depth=8, widths=(8, 16, 24),
                                    num_classes=10),
        teacher=dict(type='Teacher', random_init=True,
                     model=dict(type='CifarResNet', depth=8, widths=(4, 12, 20),
                                num_classes=10)),
        distill=distill,
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=MEAN,
                               std=STD, to_rgb=True))).train()


def batch(n=3, indices=(4, 0, 6)):
    x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(k) for k, i in
               enumerate(indices[:n])]
    return x, samples


LAYERS = ['layer1', 'layer2', 'layer3']


def test_a_list_binding_delivers_the_layers_in_order():
    model = distiller(dict(review=dict(
        loss=dict(type='_ListProbeLoss'),
        inputs=dict(student_features=[f'student.{n}' for n in reversed(LAYERS)],
                    teacher_features=[f'teacher.{n}' for n in LAYERS]))))
    x, samples = batch()
    SEEN.clear()
    model.loss(x, samples)
    own = {}
    for name in LAYERS:
        getattr(model.student, name).register_forward_hook(
            lambda m, i, o, name=name: own.__setitem__(name, o))
    model.student(x)
    assert [t.shape[1] for t in SEEN['student']] == [24, 16, 8]  # the order given
    assert [t.shape[1] for t in SEEN['teacher']] == [4, 12, 20]
    for got, name in zip(SEEN['student'], reversed(LAYERS)):
        torch.testing.assert_close(got, own[name])


def test_a_connector_on_a_list_gets_widths_and_sizes_as_lists():
    model = distiller(dict(review=dict(
        loss=dict(type='_ListProbeLoss'),
        inputs=dict(student_features=[f'student.{n}' for n in LAYERS],
                    teacher_features=['teacher.layer2', 'teacher.layer3', 'teacher.layer1']),
        connectors=dict(student_features=dict(type='_ListProbeConnector')))))
    assert SEEN['in_channels'] == [8, 16, 24]
    assert SEEN['out_channels'] == [12, 20, 4]  # the teacher's widths, level by level
    SEEN.clear()
    x, samples = batch()
    model.loss(x, samples)
    assert [tuple(s) for s in SEEN['size']] == [(16, 16), (8, 8), (32, 32)]
    assert [tuple(t.shape[1:]) for t in SEEN['student']] == [(12, 16, 16), (20, 8, 8),
                                                              (4, 32, 32)]
    # The connector trains: it is in the model's parameters and gets a gradient.
    losses = model.loss(x, samples)
    sum(losses.values()).backward()
    conv = model.terms.review.connectors.student_features.convs[0]
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_a_list_records_each_layer_and_runs_the_teacher_once():
    model = distiller(dict(review=dict(
        loss=dict(type='_ListProbeLoss'),
        inputs=dict(student_features=['student.layer1', 'student.layer3'],
                    teacher_features=['teacher.layer1', 'teacher.layer3']))))
    calls = []
    model.teacher.model.register_forward_hook(lambda *a: calls.append(1))
    x, samples = batch()
    model.loss(x, samples)
    assert len(calls) == 1
    assert model.terms.review.reads('teacher.layer3')
    assert {s.text for s in model.terms.review.sources} == {
        'student.layer1', 'student.layer3', 'teacher.layer1', 'teacher.layer3'}


@pytest.mark.parametrize('bad, message', [
    ([], 'an empty list of sources'),
    (['student.layer1', 'student.layr2'], r"input 'student_features'\[1\].*no layer named "
                                          r"'layr2'.*did you mean 'student.layer2'"),
    (['student.layer1', 'studnet.layer2'], r"\[1\]: unknown source 'studnet.layer2'"),
])
def test_bad_lists_are_refused_at_build_time(bad, message):
    with pytest.raises(ValueError, match=message):
        distiller(dict(review=dict(loss=dict(type='_ListProbeLoss'),
                                   inputs=dict(student_features=bad,
                                               teacher_features=['teacher.layer1']))))


def test_a_connector_on_a_list_needs_layer_sources():
    with pytest.raises(ValueError, match='connector applies to layer sources, not to '
                                         "'student.logits'"):
        distiller(dict(review=dict(
            loss=dict(type='_ListProbeLoss'),
            inputs=dict(student_features=['student.layer1', 'student.logits'],
                        teacher_features=['teacher.layer1']),
            connectors=dict(student_features=dict(type='_ListProbeConnector',
                                                  in_channels=[8, 10],
                                                  out_channels=[4, 10])))))


def test_indices_are_the_samples_dataset_indices():
    model = distiller(dict(crd=dict(loss=dict(type='_IndexedLoss'))))
    assert model.terms.crd.reads('indices')  # bound by its argument name
    x, samples = batch(indices=(5, 2, 6))
    model.loss(x, samples)
    assert SEEN['indices'].dtype == torch.long
    assert SEEN['indices'].tolist() == [5, 2, 6]


def test_indices_without_sample_idx_is_a_clear_error():
    model = distiller(dict(crd=dict(loss=dict(type='_IndexedLoss'))))
    x, _ = batch()
    samples = [DataSample().set_gt_label(0) for _ in range(3)]
    with pytest.raises(ValueError, match="reads 'indices'.*sample_idx"):
        model.loss(x, samples)


def test_per_sample_state_must_fit_the_training_set():
    model = distiller(dict(crd=dict(loss=dict(type='_IndexedLoss'))))
    check_sample_state(model, list(range(7)))
    with pytest.raises(ValueError, match=r"term 'crd' \(_IndexedLoss\) keeps state for "
                                         r'num_samples=7 .* has 9: set its loss '
                                         r'num_samples=9'):
        check_sample_state(model, list(range(9)))
