"""An end-to-end distillation on the shipped CIFAR-10 subset: a small CNN teacher is trained
by the runner, then a small DeiT student with the DeiT recipe (deit_ti_distilled_cifar10.py,
shrunk) learns from it; its loss falls and both terms are logged."""
import os.path as osp

import numpy as np
import pytest

from conftest import build_runner, cifar_cfg, tiny_deit, tiny_resnet

TEACHER_EPOCHS = 2
STUDENT_EPOCHS = 4


@pytest.fixture(scope='module')
def teacher_run(cifar_mini, tmp_path_factory):
    """A CifarResNet-8 teacher, 2 epochs on 200 images per class (resnet20_cifar10 recipe)."""
    work_dir = tmp_path_factory.mktemp('cifar_teacher')
    cfg = cifar_cfg('resnet20_cifar10', cifar_mini, work_dir, batch_size=50,
                    max_epochs=TEACHER_EPOCHS, per_class=200, randomness=dict(seed=0))
    cfg.model.student = tiny_resnet()
    cfg.train_cfg.val_interval = TEACHER_EPOCHS
    cfg.val_dataloader.batch_size = 100
    runner = build_runner(cfg)
    runner.train()
    return str(work_dir), runner


@pytest.fixture(scope='module')
def student_run(teacher_run, cifar_mini, tmp_path_factory):
    """The distilled student: 4 epochs of 20 iterations (100 images per class, batch 50)
    with mixup, cutmix, RandAugment, random erasing, label smoothing and hard distillation
    as configured; only the model size and a schedule fitted to 4 epochs differ."""
    teacher_dir, _ = teacher_run
    work_dir = tmp_path_factory.mktemp('cifar_student')
    cfg = cifar_cfg('deit_ti_distilled_cifar10', cifar_mini, work_dir, batch_size=50,
                    max_epochs=STUDENT_EPOCHS, per_class=100, randomness=dict(seed=0))
    cfg.model.student = tiny_deit(embed_dim=64, num_heads=4, drop_path_rate=0.1)
    cfg.model.teacher.model = tiny_resnet()
    cfg.model.teacher.checkpoint = teacher_dir
    cfg.train_cfg.val_interval = STUDENT_EPOCHS
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
             convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', T_max=STUDENT_EPOCHS - 1, eta_min=1e-5, by_epoch=True,
             begin=1, end=STUDENT_EPOCHS, convert_to_iter_based=True),
    ]
    runner = build_runner(cfg)
    runner.train()
    return runner


def history(runner, key):
    return np.asarray(runner.message_hub.get_scalar(key).data[0], dtype=np.float64)


def test_teacher_learned_something(teacher_run):
    work_dir, runner = teacher_run
    assert osp.isfile(osp.join(work_dir, f'epoch_{TEACHER_EPOCHS}.pth'))
    top1 = runner.message_hub.get_scalar('val/joint/top1').current()
    assert top1 > 15.0  # chance is 10 %


def test_student_uses_the_trained_teacher(teacher_run, student_run):
    work_dir, _ = teacher_run
    teacher = student_run.model.teacher
    assert teacher.checkpoint == osp.join(work_dir, f'epoch_{TEACHER_EPOCHS}.pth')
    assert student_run.model.distill_active


def test_distilled_student_loss_falls(student_run):
    assert student_run.iter == STUDENT_EPOCHS * 20
    loss = history(student_run, 'train/loss')
    cls = history(student_run, 'train/loss_cls')
    distill = history(student_run, 'train/loss_distill')
    assert len(loss) == len(cls) == len(distill) == STUDENT_EPOCHS * 20
    # The total is the sum of the two logged terms, iteration by iteration.
    assert np.allclose(loss, cls + distill, atol=1e-4)
    assert np.isfinite(loss).all()
    first, last = loss[:10].mean(), loss[-10:].mean()
    assert last < 0.95 * first, (first, last)
    assert distill[-10:].mean() < distill[:10].mean()


def test_both_loss_terms_logged(student_run):
    with open(osp.join(student_run.log_dir, f'{student_run.timestamp}.log')) as f:
        log = f.read()
    lines = [line for line in log.splitlines() if 'Epoch(train)' in line]
    assert len(lines) == STUDENT_EPOCHS * 20  # logger interval 1
    assert all('loss_cls:' in line and 'loss_distill:' in line for line in lines)


def test_student_validation_reports_every_head(student_run):
    scalars = student_run.message_hub.log_scalars
    for head in ('joint', 'cls', 'dist'):
        for k in (1, 5):
            value = scalars[f'val/{head}/top{k}'].current()
            assert 0.0 <= value <= 100.0
