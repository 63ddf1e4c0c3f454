# DeiT-Ti with the distillation token at 160 px (10x10 patches) from RegNetY-16GF at 224 px
# of the same crop (Teacher(view=...), kdzoo/datasets/views.py): each training image is
# cropped, flipped, augmented and mixed once at 224 px for the teacher, and resized to 160
# for the student. Views come from the replayable data path: ReplaySampler (instead of
# DeiT's repeated augmentation) and mixing per pair. Test images: short edge 183, centre
# crop 160 (DeiT's 0.875 crop ratio).
_base_ = ['./deit_ti_distilled.py']
model = dict(student=dict(img_size=160), teacher=dict(view=dict(size=224)))
data_preprocessor = dict(type='ReplayClsDataPreprocessor', mix_mode='pair')
bgr_mean = [103.53, 116.28, 123.675]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=160, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=[57.375, 57.12, 58.395]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=183, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=160),
    dict(type='PackInputs'),
]
train_dataloader = dict(sampler=dict(_delete_=True, type='ReplaySampler', shuffle=True),
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
