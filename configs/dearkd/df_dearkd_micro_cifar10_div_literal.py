# The intra-divergence ablation with the literal L_ep of the paper, -d(anchor, easy positive).
_base_ = ['./df_dearkd_micro_cifar10_div_paper.py']
synth_root = 'data/df_div/literal'
synthesis = dict(out=synth_root, synthesizer=dict(diversity=dict(ep_form='negative')))
train_dataloader = dict(dataset=dict(data_root=synth_root))
