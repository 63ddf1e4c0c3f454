# The intra-divergence ablation with alpha_ep 5 instead of the paper's 50.
_base_ = ['./df_dearkd_micro_cifar10_div_paper.py']
synth_root = 'data/df_div/alpha5'
synthesis = dict(out=synth_root, synthesizer=dict(diversity=dict(alpha_ep=5.0)))
train_dataloader = dict(dataset=dict(data_root=synth_root))
