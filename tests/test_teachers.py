"""Several teachers in one Distiller (``model.teachers``): their sources, bound together in
one term; each run once per step and only when read; build-time errors; none of them in
checkpoints, the optimizer or DDP; each one's accuracy in validation."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.structures import DataSample

import kdzoo  # noqa: F401
from kdzoo.engine.optim_constructor import _WithoutTeacher
from kdzoo.evaluation import HeadsAccuracy
from kdzoo.registry import MODELS

torch.set_num_threads(1)
MEAN, STD = [125.3, 123.0, 113.9], [51.6, 50.8, 51.3]
SEEN = {}


@MODELS.register_module(force=True)
class _TeachersProbe(nn.Module):
    def forward(self, student_logits, teacher_logits):
        SEEN['teachers'] = teacher_logits
        return sum((student_logits.float() - t).pow(2).mean() for t in teacher_logits)


@MODELS.register_module(force=True)
class _OneTeacherProbe(nn.Module):
    def forward(self, student_logits, teacher_logits):
        return (student_logits.float() - teacher_logits).pow(2).mean()


def resnet(widths, num_classes=10):
    return dict(type='CifarResNet', depth=8, widths=widths, num_classes=num_classes)


def teachers(**extra):
    out = dict(a=dict(type='Teacher', random_init=True, model=resnet((4, 8, 12))),
               b=dict(type='Teacher', random_init=True, model=resnet((6, 10, 14)),
                      mean=[120.0, 120.0, 120.0], std=[60.0, 60.0, 60.0], img_size=40,
                      channels_last=True))
    out.update(extra)
    return out


def distiller(distill, **kw):
    cfg = dict(type='Distiller', student=resnet((8, 16, 24)), teachers=teachers(),
               distill=distill,
               data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=MEAN,
                                      std=STD, to_rgb=True))
    cfg.update(kw)
    return MODELS.build(cfg).train()


def ensemble(*names):
    return dict(ens=dict(loss=dict(type='_TeachersProbe'), inputs=dict(
        teacher_logits=[f'teachers.{n}.logits' for n in names])))


def batch(n=4):
    x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return x, [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i % 10) for i in range(n)]


def calls_of(model):
    calls = {}
    for name, t in model.teachers.items():
        t.model.register_forward_hook(lambda *a, name=name: calls.__setitem__(
            name, calls.get(name, 0) + 1))
    return calls


def test_a_term_reads_two_teachers_each_on_its_own_input():
    torch.manual_seed(0)
    model = distiller(ensemble('a', 'b'))
    calls = calls_of(model)
    x, samples = batch()
    model.loss(x, samples)
    assert calls == {'a': 1, 'b': 1}
    got_a, got_b = SEEN['teachers']
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(got_a, model.teachers.a.model(x))
        # b: renormalised to its own mean/std and resized to its own 40 px.
        xb = (x * std + mean - 120.0) / 60.0
        xb = nn.functional.interpolate(xb, size=(40, 40), mode='bicubic', align_corners=False)
        torch.testing.assert_close(got_b, model.teachers.b.model(xb))
    assert not torch.allclose(got_a, got_b)


def test_a_teacher_runs_only_when_an_active_term_reads_it():
    model = distiller(dict(
        from_a=dict(loss=dict(type='_OneTeacherProbe'),
                    inputs=dict(teacher_logits='teachers.a.logits')),
        from_b=dict(loss=dict(type='_OneTeacherProbe'),
                    inputs=dict(teacher_logits='teachers.b.logits')),
        b_layer=dict(loss=dict(type='HiddenMSELoss'),
                     inputs=dict(student_features='student.layer3',
                                 teacher_features='teachers.b.layer3'),
                     connectors=dict(student_features=dict(type='ConvConnector')))))
    calls = calls_of(model)
    x, samples = batch()
    model.loss(x, samples)
    assert calls == {'a': 1, 'b': 1}  # b once, for its logits and its layer
    model.set_stage({'from_a': 1.0})
    losses = model.loss(x, samples)
    assert calls == {'a': 2, 'b': 1}
    assert losses['loss_from_b'].item() == 0 and losses['loss_b_layer'].item() == 0
    model.set_stage({})
    model.loss(x, samples)
    assert calls == {'a': 2, 'b': 1}


def test_named_teachers_layers_are_recorded():
    model = distiller(dict(h=dict(loss=dict(type='HiddenMSELoss'), inputs=dict(
        student_features='student.layer2', teacher_features='teachers.a.layer2'),
        connectors=dict(student_features=dict(type='ConvConnector')))))
    x, samples = batch()
    feats = {}
    model.teachers.a.model.layer2.register_forward_hook(
        lambda m, i, o: feats.__setitem__('t', o))
    model.student.layer2.register_forward_hook(lambda m, i, o: feats.__setitem__('s', o))
    got = model.loss(x, samples)['loss_h']
    aligned = model.terms.h.connectors.student_features(feats['s'])
    torch.testing.assert_close(got, nn.functional.mse_loss(aligned, feats['t']))
    assert aligned.shape[1] == 8  # the connector was sized to teacher a's layer2


@pytest.mark.parametrize('source, message', [
    ('teachers.c.logits', "no teacher named 'c'; the named teachers are: a, b"),
    ('teachers.a.logit', r"did you mean 'teachers.a.logits'"),
    ('teachers.a.layer9', r"teachers.a has no layer named 'layer9'"),
    ('teachers..logits', 'does not name a teacher'),
])
def test_bad_teacher_sources_are_refused_at_build_time(source, message):
    with pytest.raises(ValueError, match=message):
        distiller(dict(t=dict(loss=dict(type='_OneTeacherProbe'),
                              inputs=dict(teacher_logits=source))))


def test_teachers_with_different_class_counts_in_one_term_are_refused():
    with pytest.raises(ValueError, match=r"term 'ens' reads the logits of teachers with "
                                         r'different class counts \(teachers.a 10, '
                                         r'teachers.c 100\)'):
        distiller(ensemble('a', 'c'), teachers=teachers(c=dict(
            type='Teacher', random_init=True, model=resnet((4, 8, 12), num_classes=100))))
    with pytest.raises(ValueError, match='teachers.c predicts 100 classes but the student 10'):
        distiller(ensemble('c'), teachers=teachers(c=dict(
            type='Teacher', random_init=True, model=resnet((4, 8, 12), num_classes=100))))


def test_no_teacher_is_saved_optimised_or_loaded_over():
    model = distiller(ensemble('a', 'b'))
    keys = list(model.state_dict())
    assert keys and not any(k.startswith(('teacher.', 'teachers.')) for k in keys)
    without = _WithoutTeacher(model)
    assert 'teachers' not in dict(without.named_children())
    own = {k: v.clone() for k, v in model.teachers.a.state_dict().items()}
    state = dict(model.state_dict())
    state['teachers.a.model.fc.weight'] = torch.zeros_like(own['model.fc.weight'])
    model.load_state_dict(state, strict=True)
    torch.testing.assert_close(model.teachers.a.state_dict()['model.fc.weight'],
                               own['model.fc.weight'])
    assert all(not p.requires_grad for p in model.teachers.parameters())


def test_validation_reports_each_teachers_accuracy():
    model = distiller(ensemble('a', 'b'))
    # Random teachers have no accuracy worth reporting; mark them trained to check the path.
    for t in model.teachers.values():
        t.random_init = False
    model.eval()
    x, samples = batch(6)
    with torch.no_grad():
        out = model.predict(x, samples)
        logits = {n: model.run_teacher(t, x) for n, t in model.teachers.items()}
    metric = HeadsAccuracy(topk=(1,))
    metric.process(None, [s.to_dict() for s in out])
    got = metric.compute_metrics(metric.results)
    labels = torch.tensor([i % 10 for i in range(6)])
    for name in ('a', 'b'):
        expected = (logits[name].argmax(1) == labels).float().mean().item() * 100
        assert got[f'teacher/{name}/top1'] == pytest.approx(expected)
    assert 'teacher/top1' not in got  # no default teacher here


def test_the_two_teacher_config_trains_and_reports_both_teachers(cifar_tiny, tmp_path):
    """configs/deit/deit_micro_2teachers_cifar10.py through tools/train.py: the ensemble
    term is logged, and validation reports each teacher's accuracy."""
    import glob
    import json
    import os.path as osp

    from conftest import REPO, load_tool
    paths = {}
    for name, depth in (('resnet20', 20), ('resnet56', 56)):
        torch.manual_seed(depth)
        net = MODELS.build(dict(type='CifarResNet', depth=depth, num_classes=10))
        paths[name] = str(tmp_path / f'{name}.pth')
        torch.save(net.state_dict(), paths[name])
    options = [f'{loader}.{key}={value}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
               for key, value in (('dataset.data_root', cifar_tiny), ('num_workers', 0),
                                  ('persistent_workers', False))]
    options += ['train_dataloader.dataset.subset_ratio=1.0',
                'train_dataloader.dataset.per_class=2', 'train_dataloader.batch_size=10',
                'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                'default_hooks.logger.interval=1', 'default_hooks.progress_bar.disable=True',
                f"model.teachers.resnet20.checkpoint={paths['resnet20']}",
                f"model.teachers.resnet56.checkpoint={paths['resnet56']}",
                'model.student.embed_dim=32', 'model.student.depth=1']
    work_dir = str(tmp_path / 'work')
    load_tool('train').main([osp.join(REPO, 'configs', 'deit',
                                      'deit_micro_2teachers_cifar10.py'),
                             '--work-dir', work_dir, '--cfg-options', *options])
    [scalars] = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    records = [json.loads(line) for line in open(scalars)]
    assert all(r['loss_kd'] > 0 for r in records if 'loss' in r)
    val = [r for r in records if 'joint/top1' in r][-1]
    for name in ('resnet20', 'resnet56'):
        assert 0 <= val[f'teacher/{name}/top1'] <= 100
