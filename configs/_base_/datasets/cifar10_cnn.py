# CIFAR-10 for CNN students, as the classic CIFAR distillation tables train them: random
# crop with 4 px padding and horizontal flip, no RandAugment, erasing or mixing; otherwise
# (cached decoding, replayable draws, loaders) cifar10_deit.py.
_base_ = ['./cifar10_deit.py']
data_preprocessor = dict(batch_augments=None)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
