# CPU-scale DF-DearKD on CIFAR-10: the micro DearKD student (./dearkd_micro_cifar10.py,
# same size, recipe and seeds) trained on 1000 images (100 per class) synthesised from the
# ResNet-20 teacher, with the training budget of the 10% real-data runs: 800 steps of 128
# images (100 epochs of 8 steps), 80 warm-up steps, stage 1 in the first 85% (epochs
# 1-85); validation on the real CIFAR-10 test set. Synthesis: 100 iterations at 16 px then
# 100 at 32 px (the paper's 2000 + 2000 at 112/224 px, scaled down in size and length for
# a CPU), the paper's loss weights, intra-divergence on. Compare with
# df_dearkd_micro_cifar10_no_div.py.
#   python tools/synthesize.py configs/dearkd/df_dearkd_micro_cifar10.py
#   python tools/train.py configs/dearkd/df_dearkd_micro_cifar10.py
_base_ = ['./dearkd_micro_cifar10.py', '../_base_/synthesis/df_cifar10.py']

synth_root = 'data/df_cifar10_micro_synth'
synthesis = dict(
    out=synth_root,
    num_images=1000,
    batch_size=100,
    per_class_in_batch=10,  # every batch: 10 classes x 10 images
    synthesizer=dict(stages=[dict(size=16, iterations=100, jitter=1),
                             dict(size=32, iterations=100, jitter=2)]),
)
# Every synthetic image is used (the real-data micro configs keep 10%).
train_dataloader = dict(dataset=dict(data_root=synth_root, data_prefix='', subset_ratio=1.0))
max_epochs = 100
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, eta_min=1e-5, by_epoch=True,
         begin=10, end=max_epochs, convert_to_iter_based=True),
]
default_hooks = dict(distill_stage=dict(switch_ratio=17 / 20))
