# DF-DearKD at the larger CPU scale: df_dearkd_micro_cifar10.py with 2000 synthetic images
# (20 shards of 10 classes x 10) made with 150 iterations at 16 px then 150 at 32 px, the
# paper's loss weights with kdzoo's inverse L_ep. The student keeps the budget of the
# 1000-image runs and of the 10% real-data runs: 800 steps of 128 images (50 epochs of
# 16 steps), stage 1 in the first 85%. Compare with df_dearkd_micro_cifar10_2k_no_div.py.
_base_ = ['./df_dearkd_micro_cifar10.py']

synth_root = 'data/df_cifar10_2k_synth'
synthesis = dict(out=synth_root, num_images=2000,
                 synthesizer=dict(stages=[dict(size=16, iterations=150, jitter=1),
                                          dict(size=32, iterations=150, jitter=2)]))
max_epochs = 50
train_dataloader = dict(dataset=dict(data_root=synth_root))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, eta_min=1e-5, by_epoch=True,
         begin=5, end=max_epochs, convert_to_iter_based=True),
]
