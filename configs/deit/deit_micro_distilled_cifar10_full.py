# deit_micro_distilled_cifar10.py on all 50 000 training images with the budget of its
# 10% run: 782 steps of 128 images; the schedule of deit_micro_cifar10_full.py.
_base_ = ['./deit_micro_distilled_cifar10.py']

train_dataloader = dict(dataset=dict(subset_ratio=1.0))
train_cfg = dict(max_epochs=2, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=80),
    dict(type='CosineAnnealingLR', T_max=782 - 80, eta_min=1e-5, by_epoch=False, begin=80,
         end=782),
]
