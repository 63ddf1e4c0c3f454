# DearKD-Ti-1000: dearkd_ti.py trained for 1000 epochs, stage 1 in epochs 1-800 and stage 2
# in 801-1000 (the paper's 800 + 200); the 5 warm-up epochs stay, the cosine decay spans
# the remaining 995.
_base_ = ['./dearkd_ti.py']

max_epochs = 1000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, eta_min=1e-5, by_epoch=True, begin=5,
         end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(distill_stage=dict(switch_epoch=800))
