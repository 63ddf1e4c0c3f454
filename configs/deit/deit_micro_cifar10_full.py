# deit_micro_cifar10.py on all 50 000 training images with the same training budget as
# its 10% subset: 782 steps of 128 images (2 epochs of 391 steps; the 10% run takes 800:
# 20 of 40), the same 80 warm-up steps and cosine decay, now counted in steps.
_base_ = ['./deit_micro_cifar10.py']

train_dataloader = dict(dataset=dict(subset_ratio=1.0))
train_cfg = dict(max_epochs=2, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=80),
    dict(type='CosineAnnealingLR', T_max=782 - 80, eta_min=1e-5, by_epoch=False, begin=80,
         end=782),
]
