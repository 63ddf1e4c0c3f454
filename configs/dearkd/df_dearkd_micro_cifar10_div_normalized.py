# The intra-divergence ablation on L2-normalised embeddings (distances in [0, 2]).
_base_ = ['./df_dearkd_micro_cifar10_div_paper.py']
synth_root = 'data/df_div/normalized'
synthesis = dict(out=synth_root, synthesizer=dict(diversity=dict(normalize=True)))
train_dataloader = dict(dataset=dict(data_root=synth_root))
