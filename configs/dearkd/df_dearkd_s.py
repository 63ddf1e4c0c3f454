# DF-DearKD-S: DearKD-S (./dearkd_s.py) trained on the images synthesised from the
# RegNetY-16GF teacher (the same set as df_dearkd_ti.py); validation on real ImageNet val.
_base_ = ['./dearkd_s.py', '../_base_/synthesis/df_dearkd_imagenet.py']

train_dataloader = dict(dataset=dict(data_root='data/df_imagenet_synth', data_prefix=''))
