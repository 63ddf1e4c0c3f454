# DeiT-B distilled, fine-tuned at 384x384 from the 224 model with distillation kept on
# (the paper's DeiT-B-distilled-384: 30 epochs, lr 5e-6 x batch/512, weight decay 1e-8,
# constant lr; the teacher runs at the same 384 resolution). The official code refuses
# distillation during fine-tuning; here the teacher simply sees the 384 batch.
# model.student.pretrained: a DeiT-B distilled 224 checkpoint (kdzoo, timm or the official
# deit_base_distilled_patch16_224-df68dfff.pth); the position embedding is resized
# bicubically on load.
_base_ = ['./deit_b_distilled.py']
model = dict(student=dict(img_size=384,
                          pretrained='checkpoints/deit_base_distilled_patch16_224-df68dfff.pth'))

bgr_mean = [103.53, 116.28, 123.675]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=384, backend='pillow', interpolation='bicubic'),
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
    dict(type='ResizeEdge', scale=384, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=384),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=5e-6 * 512 / 512, weight_decay=1e-8))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=30)]
train_cfg = dict(max_epochs=30)
auto_scale_lr = dict(base_batch_size=512)
