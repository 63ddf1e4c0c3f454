# The equal-epoch budget of the CPU-scale data-efficiency study (configs/deit/README.md,
# configs/dearkd/README.md): 2 epochs over the run's own training images whatever their
# number (at the study's batch of 64, 80 steps on a 5% subset and 782 on 50%). Warm-up
# over the first 10% of the steps, cosine decay over the rest; otherwise
# cifar10_micro_20e.py.
_base_ = ['./cifar10_micro_20e.py']
max_epochs = 2
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=0.2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1.8, eta_min=1e-5, by_epoch=True, begin=0.2,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
