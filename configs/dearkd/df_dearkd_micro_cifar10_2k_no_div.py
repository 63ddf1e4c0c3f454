# df_dearkd_micro_cifar10_2k.py without the intra-divergence loss (plain DeepInversion),
# in its own folder; everything else the same.
_base_ = ['./df_dearkd_micro_cifar10_2k.py']
synth_root = 'data/df_cifar10_2k_synth_no_div'
synthesis = dict(out=synth_root, synthesizer=dict(diversity=None))
train_dataloader = dict(dataset=dict(data_root=synth_root))
