# df_dearkd_micro_cifar10_2k.py with alpha_ep 5 instead of the paper's 50: the least
# harmful intra-divergence setting of the 300-image ablation (README.md, "Why the
# intra-divergence loss hurt"); its own folder, everything else the same.
_base_ = ['./df_dearkd_micro_cifar10_2k.py']
synth_root = 'data/df_cifar10_2k_synth_alpha5'
synthesis = dict(out=synth_root, synthesizer=dict(diversity=dict(alpha_ep=5.0)))
train_dataloader = dict(dataset=dict(data_root=synth_root))
