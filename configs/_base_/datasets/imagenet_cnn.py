# ImageNet-1k for CNN students, as the classic ImageNet distillation tables train them
# (ResNet-34 -> ResNet-18; Tian et al. ICLR 2020, Zhao et al. CVPR 2022): random resized
# crop to 224 and horizontal flip, no RandAugment, erasing or mixing, batch 256 (8 GPUs x
# 32); test: short edge 256, centre crop 224. Otherwise imagenet_deit.py.
_base_ = ['./imagenet_deit.py']
data_preprocessor = dict(batch_augments=None)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=32, sampler=dict(_delete_=True, type='DefaultSampler',
                                                    shuffle=True),
                        dataset=dict(pipeline=train_pipeline))
