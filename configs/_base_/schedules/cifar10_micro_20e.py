# The CPU-scale CIFAR-10 budget: 20 epochs (800 steps of 128 on a 10% subset), 2 warm-up
# epochs, cosine decay, lr 1e-3; otherwise cifar10_adamw_100e.py.
_base_ = ['./cifar10_adamw_100e.py']
max_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 2, eta_min=1e-5, by_epoch=True, begin=2,
         end=max_epochs, convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
