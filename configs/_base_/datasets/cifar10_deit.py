# CIFAR-10 in the class-folder layout (data/cifar10/{train,test}/<class>/*.jpg, made by
# tools/prepare_cifar10.py) with DeiT's augmentations scaled to 32x32 images.
# Speed only (samples and results are the same without them): the decoded images are kept
# in memory (150 MB for the 50,000 training images), and the workers stack each batch into
# one tensor (default_collate), which they hand over much faster than 128 separate ones.
# Replayable (kdzoo/datasets/replay.py): every random draw of a training sample comes from
# (data seed, epoch, sample id) and mixup/cutmix mix the pairs of the epoch's order, so a
# teacher's outputs can be recorded once and replayed (tools/record_teacher.py), and 1 or
# 8 processes with the same global batch see the same batches. The data seed is the run's
# seed unless the sampler's data_seed says otherwise.
dataset_type = 'ImageFolderSubset'
data_root = 'data/cifar10'
data_preprocessor = dict(
    type='ReplayClsDataPreprocessor',
    mix_mode='pair',  # 'batch': DeiT's one lam per batch (replays at a fixed world size)
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=True,
    batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8),
                                  dict(type='CutMix', alpha=1.0)]),
)
bgr_mean = data_preprocessor['mean'][::-1]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=[51.255, 50.847, 51.5865]),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='ReplaySampler', shuffle=True, data_seed=None),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline, cache_decoded=True),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='test',
                 pipeline=test_pipeline, cache_decoded=True),
)
val_evaluator = dict(type='HeadsAccuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
