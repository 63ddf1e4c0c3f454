# The intra-divergence ablation with a triplet margin of half the anchor's class spread.
_base_ = ['./df_dearkd_micro_cifar10_div_paper.py']
synth_root = 'data/df_div/spread'
synthesis = dict(out=synth_root, synthesizer=dict(diversity=dict(margin=0.5, margin_mode='spread')))
train_dataloader = dict(dataset=dict(data_root=synth_root))
