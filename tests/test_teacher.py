"""The frozen teacher: no gradients, eval mode through training, checkpoint loading,
class-count checks and input adaptation (renormalisation and resizing)."""
import copy
import os
import os.path as osp
import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from conftest import build_runner, cifar_cfg, tiny_deit, tiny_resnet
from kdzoo.models import Teacher
from kdzoo.registry import MODELS

CIFAR_MEAN = [125.307, 122.961, 113.8575]
CIFAR_STD = [51.5865, 50.847, 51.255]
IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]


@MODELS.register_module(force=True)
class RecordingTeacherNet(nn.Module):
    """Records every input it sees; logits are a fixed linear map of the channel means.

    It has no ``num_classes`` attribute, so the Teacher finds its class count by a dry
    forward."""

    def __init__(self, classes=10):
        super().__init__()
        self.fc = nn.Linear(3, classes)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.fc(x.mean(dim=(2, 3)))


def distiller_cfg(teacher, data_preprocessor=None, **student):
    return dict(type='Distiller', student=tiny_deit(**student), teacher=teacher,
                criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
                distill_loss=dict(type='HardDistillLoss'), alpha=0.5,
                data_preprocessor=data_preprocessor)


def cifar_preprocessor():
    return dict(type='ClsDataPreprocessor', num_classes=10, mean=CIFAR_MEAN, std=CIFAR_STD,
                to_rgb=True)


# ------------------------------------------------------------------------ frozen state

def test_teacher_parameters_frozen_and_eval_forever():
    teacher = MODELS.build(dict(type='Teacher', random_init=True, model=tiny_resnet()))
    assert isinstance(teacher, Teacher)
    params = list(teacher.parameters())
    assert params and not any(p.requires_grad for p in params)
    teacher.train()
    teacher.train(True)
    assert not any(m.training for m in teacher.modules())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = teacher(x)
    assert out.dtype == torch.float32 and out.shape == (2, 10)
    assert not out.requires_grad


def test_distiller_train_mode_keeps_teacher_in_eval():
    model = MODELS.build(distiller_cfg(dict(type='Teacher', random_init=True, model=tiny_resnet())))
    model.train()
    assert model.training and model.student.training
    assert not any(m.training for m in model.teacher.modules())


@pytest.fixture(scope='module')
def distill_run(cifar_tiny, tmp_path_factory):
    """A tiny distilled CIFAR config trained for one epoch of 3 iterations by the runner,
    with the teacher's weights and the modes of its modules at every forward recorded."""
    work_dir = tmp_path_factory.mktemp('distill_run')
    cfg = cifar_cfg('deit_ti_distilled_cifar10', cifar_tiny, work_dir, batch_size=10,
                    per_class=3)
    cfg.model.student = tiny_deit()
    cfg.model.teacher.model = tiny_resnet()
    cfg.model.teacher.update(checkpoint=None, random_init=True)
    torch.manual_seed(0)
    runner = build_runner(cfg)
    model = runner.model
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    student_before = copy.deepcopy(model.student.state_dict())
    modes = []
    original = model.teacher.forward

    def recording_forward(*args, **kwargs):
        modes.append([m.training for m in model.teacher.modules()])
        return original(*args, **kwargs)

    model.teacher.forward = recording_forward
    runner.train()
    return dict(runner=runner, teacher_before=teacher_before,
                student_before=student_before, modes=modes)


def test_teacher_in_eval_mode_during_and_after_training(distill_run):
    runner = distill_run['runner']
    assert runner.iter == 3 and runner.epoch == 1
    modes = distill_run['modes']
    assert len(modes) == 3  # one teacher forward per training iteration
    assert not any(any(step) for step in modes)
    model = runner.model
    assert model.teacher.training is False
    assert not any(m.training for m in model.teacher.modules())


def test_teacher_weights_unchanged_student_changed(distill_run):
    model = distill_run['runner'].model
    before = distill_run['teacher_before']
    after = model.teacher.state_dict()
    assert before.keys() == after.keys()
    # Parameters and BatchNorm statistics alike.
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert any('running_mean' in k for k in before)
    student_before = distill_run['student_before']
    changed = [k for k, v in model.student.state_dict().items()
               if not torch.equal(v, student_before[k])]
    assert len(changed) > len(student_before) // 2


# ------------------------------------------------------------------ checkpoint errors

def test_missing_checkpoint_file_raises_at_build(tmp_path):
    missing = str(tmp_path / 'nowhere' / 'teacher.pth')
    with pytest.raises(FileNotFoundError, match=missing):
        MODELS.build(distiller_cfg(dict(type='Teacher', model=tiny_resnet(),
                                        checkpoint=missing)))


def test_checkpoint_dir_without_last_checkpoint_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match='last_checkpoint'):
        Teacher(tiny_resnet(), checkpoint=str(tmp_path))


def test_missing_checkpoint_raises_when_runner_is_built(cifar_tiny, tmp_path):
    missing = str(tmp_path / 'no_teacher_here.pth')
    cfg = cifar_cfg('deit_ti_distilled_cifar10', cifar_tiny, tmp_path / 'work')
    cfg.model.student = tiny_deit()
    cfg.model.teacher.model = tiny_resnet()
    cfg.model.teacher.checkpoint = missing
    with pytest.raises(FileNotFoundError, match=missing):
        build_runner(cfg)


@pytest.mark.parametrize('teacher_classes', [100, 7])
def test_class_count_mismatch_names_both_counts(teacher_classes):
    with pytest.raises(ValueError, match=rf'{teacher_classes}.*\b10\b'):
        MODELS.build(distiller_cfg(dict(type='Teacher', random_init=True,
                                        model=tiny_resnet(num_classes=teacher_classes))))


def test_class_count_found_by_dry_forward():
    with pytest.raises(ValueError, match=r'\b5\b.*\b10\b'):
        MODELS.build(distiller_cfg(dict(type='Teacher', random_init=True,
                                        model=dict(type='RecordingTeacherNet', classes=5))))
    model = MODELS.build(distiller_cfg(dict(type='Teacher', random_init=True,
                                            model=dict(type='RecordingTeacherNet'))))
    # The dry forward ran at the student's resolution.
    assert model.teacher.model.seen[0].shape == (1, 3, 32, 32)


# ------------------------------------------------------------------ input adaptation

def raw_batch(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
            for _ in range(n)]
    samples = [DataSample().set_gt_label(i % 10) for i in range(n)]
    return imgs, samples


def expected_teacher_input(imgs, mean, std):
    """BGR uint8 images -> RGB, normalised with the given (RGB) mean/std."""
    x = torch.stack(imgs).double().flip(1)
    mean = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess(model, imgs, samples):
    return model.data_preprocessor(dict(inputs=imgs, data_samples=samples), training=False)


def test_teacher_with_own_mean_std_gets_renormalised_input():
    model = MODELS.build(distiller_cfg(
        dict(type='Teacher', random_init=True, model=dict(type='RecordingTeacherNet'),
             mean=IMAGENET_MEAN, std=IMAGENET_STD),
        data_preprocessor=cifar_preprocessor()))
    imgs, samples = raw_batch()
    data = preprocess(model, imgs, samples)
    student_in = expected_teacher_input(imgs, CIFAR_MEAN, CIFAR_STD)
    assert torch.allclose(data['inputs'].double(), student_in, atol=1e-4)
    net = model.teacher.model
    net.seen.clear()
    model.loss(data['inputs'], data['data_samples'])
    assert len(net.seen) == 1
    got = net.seen[0].double()
    want = expected_teacher_input(imgs, IMAGENET_MEAN, IMAGENET_STD)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, student_in, atol=1e-2)


def test_teacher_without_mean_std_sees_student_input():
    model = MODELS.build(distiller_cfg(dict(type='Teacher', random_init=True,
                                            model=dict(type='RecordingTeacherNet')),
                                       data_preprocessor=cifar_preprocessor()))
    imgs, samples = raw_batch(seed=1)
    data = preprocess(model, imgs, samples)
    net = model.teacher.model
    net.seen.clear()
    model.teacher_logits(data['inputs'])
    assert torch.equal(net.seen[0], data['inputs'])


def test_teacher_only_mean_given_keeps_student_std():
    model = MODELS.build(distiller_cfg(
        dict(type='Teacher', random_init=True, model=dict(type='RecordingTeacherNet'),
             mean=IMAGENET_MEAN),
        data_preprocessor=cifar_preprocessor()))
    imgs, samples = raw_batch(seed=2)
    data = preprocess(model, imgs, samples)
    net = model.teacher.model
    net.seen.clear()
    model.teacher_logits(data['inputs'])
    want = expected_teacher_input(imgs, IMAGENET_MEAN, CIFAR_STD)
    assert torch.allclose(net.seen[0].double(), want, atol=1e-4)


def test_teacher_img_size_resizes_input():
    model = MODELS.build(distiller_cfg(
        dict(type='Teacher', random_init=True, model=dict(type='RecordingTeacherNet'), img_size=48,
             mean=IMAGENET_MEAN, std=IMAGENET_STD),
        data_preprocessor=cifar_preprocessor()))
    imgs, samples = raw_batch(seed=3)
    data = preprocess(model, imgs, samples)
    net = model.teacher.model
    net.seen.clear()
    model.teacher_logits(data['inputs'])
    got = net.seen[0]
    assert got.shape == (2, 3, 48, 48)
    renorm = expected_teacher_input(imgs, IMAGENET_MEAN, IMAGENET_STD).float()
    want = F.interpolate(renorm, size=(48, 48), mode='bicubic', align_corners=False)
    assert torch.allclose(got, want, atol=1e-3)


# ------------------------------------------------- loading a runner-trained checkpoint

@pytest.fixture(scope='module')
def trained_classifier(cifar_tiny, tmp_path_factory):
    """A tiny CifarResNet Classifier trained by the runner for 1 epoch of 3 iterations."""
    work_dir = tmp_path_factory.mktemp('resnet_run')
    cfg = cifar_cfg('resnet20_cifar10', cifar_tiny, work_dir, batch_size=10, per_class=3)
    cfg.model.student = tiny_resnet()
    runner = build_runner(cfg)
    runner.train()
    return str(work_dir), runner


def reference_logits(runner, x):
    net = runner.model.student
    net.eval()
    with torch.no_grad():
        return net(x)


def test_teacher_loads_work_dir_last_checkpoint(trained_classifier):
    work_dir, runner = trained_classifier
    assert osp.isfile(osp.join(work_dir, 'last_checkpoint'))
    teacher = MODELS.build(dict(type='Teacher', model=tiny_resnet(), checkpoint=work_dir))
    assert teacher.checkpoint == osp.join(work_dir, 'epoch_1.pth')
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    want = reference_logits(runner, x)
    assert torch.allclose(teacher(x), want, atol=1e-5)
    # A freshly initialised network gives other logits: the weights did come from the file.
    torch.manual_seed(123)
    fresh = Teacher(tiny_resnet(), random_init=True)
    assert not torch.allclose(fresh(x), want, atol=1e-3)


def test_teacher_loads_checkpoint_file_and_moved_work_dir(trained_classifier, tmp_path):
    work_dir, runner = trained_classifier
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    want = reference_logits(runner, x)
    by_file = Teacher(tiny_resnet(), checkpoint=osp.join(work_dir, 'epoch_1.pth'))
    assert torch.allclose(by_file(x), want, atol=1e-5)
    # A copied work dir whose last_checkpoint holds a relative name.
    moved = tmp_path / 'moved'
    os.makedirs(moved)
    shutil.copyfile(osp.join(work_dir, 'epoch_1.pth'), moved / 'epoch_1.pth')
    (moved / 'last_checkpoint').write_text('epoch_1.pth')
    by_dir = Teacher(tiny_resnet(), checkpoint=str(moved))
    assert by_dir.checkpoint == str(moved / 'epoch_1.pth')
    assert torch.allclose(by_dir(x), want, atol=1e-5)


def test_teacher_checkpoint_for_another_architecture_is_refused(trained_classifier):
    work_dir, _ = trained_classifier
    with pytest.raises(RuntimeError, match='does not match'):
        Teacher(dict(type='CifarResNet', depth=14, widths=(8, 16, 32), num_classes=10),
                checkpoint=work_dir)


def test_distiller_with_trained_teacher_uses_its_logits(trained_classifier):
    work_dir, runner = trained_classifier
    model = MODELS.build(distiller_cfg(dict(type='Teacher', model=tiny_resnet(),
                                            checkpoint=work_dir)))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(model.teacher_logits(x), reference_logits(runner, x), atol=1e-5)
