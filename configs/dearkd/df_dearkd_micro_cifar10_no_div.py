# df_dearkd_micro_cifar10.py without the intra-divergence loss (plain DeepInversion), for
# the with/without comparison; its own synthetic folder, everything else the same.
_base_ = ['./df_dearkd_micro_cifar10.py']

synth_root = 'data/df_cifar10_micro_synth_no_div'
synthesis = dict(out=synth_root, synthesizer=dict(diversity=None))
train_dataloader = dict(dataset=dict(data_root=synth_root))
