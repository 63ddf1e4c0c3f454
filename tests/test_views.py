"""Views: a teacher sees its own view of each training sample (the same crop, flip,
augmentations and mixing at another size), made by the replayable data path from one run of
the pipeline; the views reach the teacher, and bad settings are refused before training."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmpretrain.structures import DataSample

import kdzoo  # noqa: F401
from conftest import CONFIGS
from kdzoo.datasets.replay import ReplayDataset, ReplaySampler
from kdzoo.datasets.views import resize_image
from kdzoo.engine.config_check import prepare_config
from kdzoo.registry import MODELS

torch.set_num_threads(1)
SHIPPED = osp.join(CONFIGS, '_base_', 'datasets', 'cifar10_deit.py')
DATA_SEED = 5


def low_res_pipeline(size=16):
    """The shipped CIFAR-10 pipeline with the student at ``size`` px: a Resize after the
    crop and flip, then RandAugment, erasing and packing at that size."""
    pipeline = copy.deepcopy(Config.fromfile(SHIPPED).train_pipeline)
    pipeline.insert(3, dict(type='Resize', scale=size))
    return pipeline


def dataset(root, pipeline, views=None):
    cfg = Config.fromfile(SHIPPED).train_dataloader.dataset.to_dict()
    cfg.update(data_root=str(root), per_class=2, pipeline=pipeline)
    return ReplayDataset(cfg, views=views)


def keys(ds, epoch=1, n=8):
    sampler = ReplaySampler(ds, data_seed=DATA_SEED)
    sampler.set_epoch(epoch)
    return list(sampler)[:n]


@pytest.fixture(scope='module')
def viewed(cifar_tiny):
    """The low-res (16 px) training set with a 32 px teacher view, and the same set at
    32 px without views."""
    return (dataset(cifar_tiny, low_res_pipeline(16), views=dict(teacher=dict(size=32))),
            dataset(cifar_tiny, low_res_pipeline(32)))


def test_a_view_is_the_same_sample_at_its_size(viewed):
    with_view, at_32 = viewed
    for key in keys(with_view):
        sample = with_view[key]
        view = sample['views']['teacher']
        assert tuple(view.shape) == (3, 32, 32) and tuple(sample['inputs'].shape) == (3, 16, 16)
        # The view is the sample the pipeline gives at 32 px (crop, flip, RandAugment,
        # erasing: the same draws), and the student's image is that image at 16 px.
        assert torch.equal(view, at_32[key]['inputs'])
        assert torch.equal(sample['inputs'], resize_image(view, (16, 16)))
    # Replayed: the same key gives the same views; another epoch other ones.
    key = keys(with_view)[0]
    assert torch.equal(with_view[key]['views']['teacher'], with_view[key]['views']['teacher'])
    other = keys(with_view, epoch=2)[0]
    assert other[3] != key[3] or not torch.equal(
        with_view[other]['views']['teacher'], with_view[key]['views']['teacher'])


def test_the_student_image_follows_the_pixels_of_the_view(viewed):
    """Pixel correspondence: the view brought to the student's size is the student's image,
    and the student's image is not the same region at another place (a flip or shift of it
    would differ)."""
    with_view, _ = viewed
    sample = with_view[keys(with_view)[1]]
    small = resize_image(sample['views']['teacher'], (16, 16)).float()
    student = sample['inputs'].float()
    assert torch.equal(small, student)
    assert not torch.equal(student, student.flip(-1))


def preprocessor():
    cfg = Config.fromfile(SHIPPED).data_preprocessor.to_dict()
    # cutmix or mixup for every pair, one of each at least in 8 pairs
    return MODELS.build(cfg)


def test_the_students_image_is_resized_as_its_test_pipeline_resizes(cifar_tiny):
    """A view larger than the student: the student's training image is the large image
    brought to its size by the pipeline's own Resize (interpolation and backend), as its
    test images are, not by another kernel (24 of 32 px: no kernel coincides with
    another at that ratio)."""
    import mmcv
    from mmcv.transforms import Resize
    for interpolation in ('bilinear', 'bicubic'):
        pipeline = low_res_pipeline(24)
        pipeline[3]['interpolation'] = interpolation
        ds = dataset(cifar_tiny, pipeline, views=dict(teacher=dict(size=32)))
        for key in keys(ds, n=3):
            sample = ds[key]
            view = sample['views']['teacher'].permute(1, 2, 0).numpy()
            resized = Resize(scale=24, interpolation=interpolation)(dict(img=view))['img']
            assert torch.equal(sample['inputs'], torch.from_numpy(resized).permute(2, 0, 1))
            other = mmcv.imresize(view, (24, 24), interpolation='area')
            assert not torch.equal(sample['inputs'], torch.from_numpy(other).permute(2, 0, 1))


def test_views_mix_with_the_batchs_pairs_lam_and_boxes(viewed):
    with_view, _ = viewed
    samples = [with_view[k] for k in keys(with_view, n=16)]
    pre = preprocessor()
    out = pre(default_collate(copy.deepcopy(samples)), True)
    plain = pre(default_collate(copy.deepcopy(samples)), False)
    view = out['views']['teacher']
    assert tuple(view.shape) == (16, 3, 32, 32)
    raw_view = pre.view_batch(default_collate(copy.deepcopy(samples))['views']['teacher'],
                              None)
    draws, shape = pre.batch_augments.last_draws
    assert shape == (16, 16)
    kinds = set()
    for j, kind, lam, box in draws:
        kinds.add(kind)
        a, b = raw_view[j], raw_view[j + 1]
        if kind == 'mixup':
            torch.testing.assert_close(view[j], lam * a + (1 - lam) * b)
            torch.testing.assert_close(view[j + 1], lam * b + (1 - lam) * a)
        elif kind == 'cutmix':
            # The student's box, twice as large in the 32 px view.
            moved = (out['inputs'][j] != plain['inputs'][j]).any(0)
            moved_view = (view[j] != raw_view[j]).any(0)
            y1, y2, x1, x2 = box
            expected = torch.zeros(32, 32, dtype=torch.bool)
            expected[2 * y1:2 * y2, 2 * x1:2 * x2] = True
            assert torch.equal(moved_view, expected & (a != b).any(0))
            assert torch.equal(moved, F.interpolate(expected[None, None].float(), size=(16, 16))
                               [0, 0].bool() & (plain['inputs'][j] != plain['inputs'][j + 1])
                               .any(0))
        else:
            assert torch.equal(view[j], a)
    assert {'mixup', 'cutmix'} <= kinds, kinds


def distiller(view=32, student_size=16):
    return MODELS.build(dict(
        type='Distiller',
        student=dict(type='CifarResNet', depth=8, widths=(8, 16, 24), num_classes=10),
        teacher=dict(type='Teacher', random_init=True, view=dict(size=view),
                     model=dict(type='CifarResNet', depth=8, widths=(4, 8, 12),
                                num_classes=10)),
        distill_loss=dict(type='SoftDistillLoss', tau=2.0),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10,
                               mean=[125.3, 123.0, 113.9], std=[51.6, 50.8, 51.3],
                               to_rgb=True))).train()


def test_the_teacher_reads_its_view():
    model = distiller()
    x = torch.randn(4, 3, 16, 16)
    view = torch.randn(4, 3, 32, 32)
    seen = []
    model.teacher.model.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    samples = [DataSample().set_gt_label(i) for i in range(4)]
    model(x, samples, mode='loss', views={'teacher': view})
    assert torch.equal(seen[-1], view)
    with pytest.raises(ValueError, match='sees its own view of the training samples, and '
                                         'this batch carries none'):
        model(x, samples, mode='loss')
    # In validation the teacher takes the student's images at its view's size.
    model.eval()
    with torch.no_grad():
        model.teacher_logits(x)
    assert tuple(seen[-1].shape[-2:]) == (32, 32)


def test_a_view_the_teacher_cannot_take_is_refused_at_build_time():
    with pytest.raises(ValueError, match='cannot take its view of 40 x 40 pixels'):
        MODELS.build(dict(
            type='Distiller', student=dict(type='CifarResNet', depth=8, num_classes=10),
            teacher=dict(type='Teacher', random_init=True, view=dict(size=40),
                         model=dict(type='DeiT', arch=None, embed_dim=32, depth=1, num_heads=2,
                                    img_size=32, patch_size=4, num_classes=10)),
            distill_loss=dict(type='SoftDistillLoss')))


@pytest.mark.parametrize('view, message', [
    (dict(size=0), 'view size must be a positive integer'),
    (dict(sizes=32), r'a view is dict\(size=S\)'),
    (dict(size=(24, 32)), 'a teacher view is square'),
])
def test_bad_views_are_refused(view, message):
    with pytest.raises(ValueError, match=message):
        MODELS.build(dict(type='Teacher', random_init=True, view=view,
                          model=dict(type='CifarResNet', depth=8, num_classes=10)))


def test_the_runner_hands_teacher_views_to_the_training_set():
    cfg = Config.fromfile(osp.join(CONFIGS, 'deit', 'deit_micro_distilled_cifar10.py'))
    cfg.model.teacher.view = dict(size=48)
    out = prepare_config(cfg)
    assert out.train_dataloader.dataset.type == 'ReplayDataset'
    assert out.train_dataloader.dataset.views == {'teacher': dict(size=48)}
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    with pytest.raises(ValueError, match=r"teachers \['teacher'\] ask for their own views"):
        prepare_config(cfg)


def test_a_pipeline_without_a_resizing_step_is_refused(cifar_tiny):
    pipeline = Config.fromfile(SHIPPED).train_pipeline
    with pytest.raises(ValueError, match='has none of'):
        dataset(cifar_tiny, pipeline, views=dict(teacher=dict(size=32)))


def shipped_pipeline(drop=()):
    return [t for t in Config.fromfile(SHIPPED).train_pipeline if t['type'] not in drop]


def test_a_view_pipeline_draws_as_the_students_where_they_share_transforms(cifar_tiny):
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance('views_pipeline', scope_name='kdzoo')
    same = dataset(cifar_tiny, shipped_pipeline(),
                   views=dict(teacher=dict(pipeline=shipped_pipeline())))
    no_ra = dataset(cifar_tiny, shipped_pipeline(),
                    views=dict(teacher=dict(pipeline=shipped_pipeline(drop=('RandAugment',)))))
    # The student's pipeline with RandAugment replaced by a flip that never flips: the
    # transforms after it sit at other positions than in the view's pipeline, and draw as
    # the view's do (by type and rank, not position).
    placeholder = shipped_pipeline()
    placeholder[[t['type'] for t in placeholder].index('RandAugment')] = dict(
        type='RandomFlip', prob=0.0, direction='horizontal')
    student_no_ra = dataset(cifar_tiny, placeholder,
                            views=dict(other=dict(pipeline=shipped_pipeline())))
    differ = 0
    for key in keys(same):
        sample = same[key]
        # The same pipeline twice: the same draws, the same image.
        assert torch.equal(sample['views']['teacher'], sample['inputs'])
        # Without RandAugment the crop, flip and erasing are still the student's.
        view = no_ra[key]['views']['teacher']
        assert torch.equal(view, student_no_ra[key]['inputs'])
        assert torch.equal(no_ra[key]['inputs'], sample['inputs'])
        differ += not torch.equal(view, sample['inputs'])
    assert differ > 0  # RandAugment changed some of the students' images


def test_a_view_pipeline_must_load_as_the_training_set(cifar_tiny):
    with pytest.raises(ValueError, match='its pipeline starts with RandomFlip'):
        dataset(cifar_tiny, shipped_pipeline(),
                views=dict(teacher=dict(pipeline=shipped_pipeline(drop=(
                    'LoadImageFromFile', 'RandomCrop')))))
    with pytest.raises(ValueError, match='ending with PackInputs'):
        dataset(cifar_tiny, shipped_pipeline(), views=dict(teacher=dict(pipeline=[
            dict(type='LoadImageFromFile')])))
