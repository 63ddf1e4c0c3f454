# cifar10_micro_20e.py's budget on all 50 000 training images: 782 steps of 128 images (2
# epochs of 391 steps; the 10% runs take 800), the same 80 warm-up steps and cosine decay,
# counted in steps.
_base_ = ['./cifar10_micro_20e.py']
train_cfg = dict(max_epochs=2, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=80),
    dict(type='CosineAnnealingLR', T_max=782 - 80, eta_min=1e-5, by_epoch=False, begin=80,
         end=782),
]
