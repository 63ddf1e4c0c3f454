# The CPU-scale budget of cifar10_micro_20e.py (20 epochs: 800 steps of 128 on a 10%
# subset) for CNN students: SGD with momentum 0.9, lr 0.05 and weight decay 5e-4 (the
# classic CIFAR distillation recipe, Tian et al. ICLR 2020), one warm-up epoch and cosine
# decay instead of their 240-epoch step schedule.
max_epochs = 20
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=0, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
