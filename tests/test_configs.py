"""The paper configs (configs/deit/*.py without 'cifar10'): they build, run one forward in
loss mode at their resolution, carry the DeiT recipe's hyper-parameters, and their
pipelines are valid transforms."""
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

from conftest import CONFIGS, config_path
from kdzoo.registry import MODELS, TRANSFORMS

PAPER_CONFIGS = ['deit_ti', 'deit_s', 'deit_b', 'deit_ti_distilled', 'deit_s_distilled',
                 'deit_b_distilled', 'deit_b_distilled_soft', 'deit_b_distilled_384_ft']
#: ImageNet configs with a teacher view (the student at another size than DeiT's recipe).
VIEW_CONFIGS = ['deit_ti_distilled_160_t224']
WIDTHS = {'ti': ('tiny', 192, 3), 's': ('small', 384, 6), 'b': ('base', 768, 12)}
DATASET_CONFIGS = sorted(glob.glob(osp.join(CONFIGS, '_base_', 'datasets', '*.py')))


def load(name):
    return Config.fromfile(config_path(name))


def size_of(name):
    return 384 if '384' in name else 224


def width_of(name):
    return WIDTHS[name.split('_')[1]]


def test_paper_config_list_is_complete():
    """Every ImageNet config of configs/deit is in PAPER_CONFIGS (so the recipe tests
    below read it), and every listed one exists."""
    found = {osp.splitext(osp.basename(p))[0]
             for p in glob.glob(osp.join(CONFIGS, 'deit', '*.py'))}
    found = {n for n in found if 'cifar10' not in n} - set(VIEW_CONFIGS)
    assert found == set(PAPER_CONFIGS), (sorted(found - set(PAPER_CONFIGS)),
                                         sorted(set(PAPER_CONFIGS) - found))


def test_view_config_keeps_the_recipe_at_its_sizes():
    """DeiT-Ti at 160 px from RegNetY-16GF at 224 px: the DeiT recipe with the replayable
    data path (which makes the teacher's view) and the crops at 160 px."""
    from kdzoo.engine.config_check import prepare_config
    cfg = load('deit_ti_distilled_160_t224')
    assert cfg.model.student.img_size == 160 and cfg.model.teacher.view == dict(size=224)
    assert cfg.model.teacher.model == 'timm:regnety_160'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.train_cfg.max_epochs == 300
    assert cfg.train_dataloader.sampler.type == 'ReplaySampler'
    assert cfg.data_preprocessor.type == 'ReplayClsDataPreprocessor'
    check_augmentations(cfg, crop=160)
    assert prepare_config(cfg).train_dataloader.dataset.views == {'teacher': dict(size=224)}


def test_dataset_configs_present():
    names = {osp.basename(p) for p in DATASET_CONFIGS}
    assert {'cifar10_deit.py', 'imagenet_deit.py'} <= names


# ---------------------------------------------------------------- hyper-parameters

@pytest.mark.parametrize('name', [n for n in PAPER_CONFIGS if '384' not in n])
def test_paper_recipe(name):
    cfg = load(name)
    assert cfg.default_scope == 'kdzoo'
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW'
    assert opt.lr == pytest.approx(5e-4 * 1024 / 512)
    assert opt.weight_decay == pytest.approx(0.05)
    assert cfg.train_cfg.max_epochs == 300
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.begin == 0 and warmup.end == 5
    assert cosine.type == 'CosineAnnealingLR' and cosine.begin == 5 and cosine.end == 300
    assert cosine.T_max == 295
    # Global batch: 8 GPUs x 128 = 1024, which the lr above is for.
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.auto_scale_lr.base_batch_size == 8 * 128 == 1024
    assert cfg.train_dataloader.sampler.type == 'RepeatAugSampler'
    check_augmentations(cfg, crop=224)
    model = cfg.model
    assert model.criterion.type == 'LabelSmoothCrossEntropy'
    assert model.criterion.label_smoothing == pytest.approx(0.1)
    student = model.student
    assert student.type == 'DeiT' and student.drop_path_rate == pytest.approx(0.1)
    assert student.img_size == 224 and student.patch_size == 16
    assert student.num_classes == 1000
    assert student.arch == width_of(name)[0]
    if 'distilled' in name:
        assert model.type == 'Distiller' and student.distilled is True
        assert model.teacher.type == 'Teacher'
        assert model.teacher.model == 'timm:regnety_160'
        if name.endswith('_soft'):
            assert model.distill_loss.type == 'SoftDistillLoss'
            assert model.distill_loss.tau == pytest.approx(3.0)
            assert model.alpha == pytest.approx(0.1)
        else:
            assert dict(model.distill_loss) == dict(type='HardDistillLoss')
            assert model.alpha == pytest.approx(0.5)
    else:
        assert model.type == 'Classifier' and student.distilled is False
        assert 'teacher' not in model


def check_augmentations(cfg, crop):
    augments = cfg.data_preprocessor.batch_augments.augments
    by_type = {a.type: a for a in augments}
    assert by_type['Mixup'].alpha == pytest.approx(0.8)
    assert by_type['CutMix'].alpha == pytest.approx(1.0)
    pipeline = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert pipeline['RandomErasing'].erase_prob == pytest.approx(0.25)
    ra = pipeline['RandAugment']
    assert ra.magnitude_level == 9 and ra.magnitude_std == pytest.approx(0.5)
    assert ra.num_policies == 2
    assert pipeline['RandomResizedCrop'].scale == crop
    test = {t.type: t for t in cfg.test_dataloader.dataset.pipeline}
    assert test['CenterCrop'].crop_size == crop


def test_384_finetune_recipe():
    cfg = load('deit_b_distilled_384_ft')
    model = cfg.model
    assert model.student.img_size == 384 and model.student.arch == 'base'
    assert model.student.distilled is True
    # Distillation stays on during fine-tuning.
    assert model.type == 'Distiller' and model.distill_loss.type == 'HardDistillLoss'
    assert model.teacher.model == 'timm:regnety_160'
    assert cfg.train_cfg.max_epochs == 30
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW'
    assert opt.lr == pytest.approx(5e-6) and opt.weight_decay == pytest.approx(1e-8)
    assert [s.type for s in cfg.param_scheduler] == ['ConstantLR']
    assert cfg.param_scheduler[0].end == 30
    assert cfg.auto_scale_lr.base_batch_size == 8 * cfg.train_dataloader.batch_size
    # Starts from the 224 model: DeiT's ``pretrained`` weights or the runner's load_from.
    assert model.student.get('pretrained') or cfg.load_from
    check_augmentations(cfg, crop=384)
    assert cfg.val_dataloader.dataset.pipeline[1].scale == 384


# ----------------------------------------------------------- build + one forward

def sample_images(cifar_root, n):
    folder = osp.join(cifar_root, 'train', 'cat')
    return [osp.join(folder, f) for f in sorted(os.listdir(folder))[:n]]


def run_pipeline(pipeline, img_path):
    results = dict(img_path=img_path)
    for t in pipeline:
        results = TRANSFORMS.build(t)(results)
        assert results is not None, t['type']
    return results


@pytest.mark.parametrize('name', PAPER_CONFIGS)
def test_config_builds_and_runs_loss_forward(name, cifar_mini):
    cfg = load(name)
    model_cfg = cfg.model
    if 'teacher' in model_cfg:
        model_cfg.teacher.update(checkpoint=None, random_init=True)
    model_cfg.student.pop('pretrained', None)  # weights files are not available here
    model_cfg.data_preprocessor = cfg.data_preprocessor
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    arch, dim, heads = width_of(name)
    assert model.student.embed_dim == dim
    assert model.student.blocks[0].attn.num_heads == heads and len(model.student.blocks) == 12
    size = size_of(name)
    assert model.student.patch_embed.img_size == size
    if 'teacher' in model_cfg:
        assert type(model.teacher.model).__name__ == 'RegNet'
        assert all(not p.requires_grad for p in model.teacher.parameters())

    # One real image through the real training pipeline, then the loss forward.
    packed = run_pipeline(cfg.train_dataloader.dataset.pipeline, sample_images(cifar_mini, 1)[0])
    assert tuple(packed['inputs'].shape) == (3, size, size)
    sample = packed['data_samples']
    assert isinstance(sample, DataSample)
    sample.set_gt_label(3)
    model.train()
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[packed['inputs']],
                                            data_samples=[sample]), training=True)
        losses = model(**data, mode='loss')
    expected = {'loss_cls', 'loss_distill'} if 'distilled' in name else {'loss_cls'}
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())


# ---------------------------------------------------------------- pipelines

def pipelines_of(path):
    cfg = Config.fromfile(path)
    out = []
    for key in ('train_pipeline', 'test_pipeline'):
        if key in cfg:
            out.append((key, cfg[key]))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        out.append((key, cfg[key].dataset.pipeline))
    return out


@pytest.mark.parametrize('path', DATASET_CONFIGS + [config_path('deit_b_distilled_384_ft')],
                         ids=osp.basename)
def test_pipeline_transforms_build_and_run(path, cifar_mini):
    img = sample_images(cifar_mini, 1)[0]
    for key, pipeline in pipelines_of(path):
        assert pipeline[0]['type'] == 'LoadImageFromFile'
        assert pipeline[-1]['type'] == 'PackInputs'
        for item in pipeline:
            transform = TRANSFORMS.build(item)
            assert callable(transform), (key, item['type'])
        packed = run_pipeline(pipeline, img)
        c, h, w = packed['inputs'].shape
        assert c == 3 and h == w, key
        expected = 32 if 'cifar10' in path else (384 if '384' in path else 224)
        assert h == expected, key
