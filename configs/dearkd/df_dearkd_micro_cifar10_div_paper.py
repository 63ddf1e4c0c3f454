# The intra-divergence ablation (configs/dearkd/README.md, "Why the intra-divergence loss
# hurt"): df_dearkd_micro_cifar10.py on a smaller set, 300 images (3 shards of 10 classes
# x 10) made with 120 + 120 iterations, each variant in its own folder; the student sees
# the set for 40 epochs at batch 64 (200 steps), stage 1 in the first 85%. This file is
# the paper's setting (alpha_ep 50, alpha_triplet 0.5, margin 1 on the raw embedding) with
# kdzoo's default inverse L_ep; the siblings df_dearkd_micro_cifar10_div_*.py change one
# thing each.
_base_ = ['./df_dearkd_micro_cifar10.py']

synth_root = 'data/df_div/paper'
synthesis = dict(out=synth_root, num_images=300,
                 synthesizer=dict(stages=[dict(size=16, iterations=120, jitter=1),
                                          dict(size=32, iterations=120, jitter=2)]))
max_epochs = 40
train_dataloader = dict(batch_size=64, dataset=dict(data_root=synth_root))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, eta_min=1e-5, by_epoch=True,
         begin=5, end=max_epochs, convert_to_iter_based=True),
]
