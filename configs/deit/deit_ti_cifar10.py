# DeiT-Ti width (dim 192, 3 heads, depth 12) at 32x32 with 4x4 patches on CIFAR-10,
# no distillation; DeiT recipe (AdamW, cosine, label smoothing, RandAugment, mixup/cutmix,
# random erasing) at batch 128 with lr 5e-4 x 128/512.
_base_ = ['../_base_/datasets/cifar10_deit.py', '../_base_/default_runtime.py']

max_epochs = 100
student = dict(type='DeiT', arch='tiny', distilled=False, img_size=32, patch_size=4,
               num_classes=10, drop_path_rate=0.1)
model = dict(
    type='Classifier',
    model=student,
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4 * 128 / 512, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'.cls_token': dict(decay_mult=0.0),
                                    '.dist_token': dict(decay_mult=0.0),
                                    '.pos_embed': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, eta_min=1e-5, by_epoch=True, begin=5,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
