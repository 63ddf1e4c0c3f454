# deit_micro_distilled_cifar10.py with the student at 24 px (img_size 24: 6x6 patches of
# 4 px): training images are cropped and flipped at 32 px, resized to 24, then augmented;
# test images are resized to 24. The ResNet-20 teacher sees the student's 24 px images
# (compare deit_micro_distilled_24px_t32_cifar10.py, where it sees its own 32 px view).
_base_ = ['./deit_micro_distilled_cifar10.py']
model = dict(student=dict(img_size=24))
bgr_mean = [113.8575, 122.961, 125.307]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Resize', scale=24),  # the views' size step (kdzoo/datasets/views.py)
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=[51.255, 50.847, 51.5865]),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=24),
                 dict(type='PackInputs')]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
