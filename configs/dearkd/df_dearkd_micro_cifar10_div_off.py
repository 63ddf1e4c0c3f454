# The intra-divergence ablation without the loss (plain DeepInversion).
_base_ = ['./df_dearkd_micro_cifar10_div_paper.py']
synth_root = 'data/df_div/off'
synthesis = dict(out=synth_root, synthesizer=dict(diversity=None))
train_dataloader = dict(dataset=dict(data_root=synth_root))
