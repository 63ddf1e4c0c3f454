# dearkd_micro_cifar10.py on all 50 000 training images with the budget of its 10% run:
# 782 steps of 128 images (2 epochs) with the schedule of
# ../deit/deit_micro_cifar10_full.py. Two epochs leave no epoch boundary near 250/300, so
# the stage switch is counted in steps: stage 1 in the first 85% (steps 1-665; the 10% run
# switches after 17 of its 20 epochs, also 85%), stage 2 in the rest.
_base_ = ['./dearkd_micro_cifar10.py']

train_dataloader = dict(dataset=dict(subset_ratio=1.0))
train_cfg = dict(max_epochs=2, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=80),
    dict(type='CosineAnnealingLR', T_max=782 - 80, eta_min=1e-5, by_epoch=False, begin=80,
         end=782),
]
custom_hooks = [dict(type='ProgressBarHook'),
                dict(type='DistillStageHook', switch_ratio=17 / 20, by_epoch=False)]
