# DF-DearKD-Ti: DearKD-Ti (./dearkd_ti.py, both stages unchanged) trained on images
# synthesised from the RegNetY-16GF teacher instead of ImageNet; validation stays on the
# real ImageNet val set. First: python tools/synthesize.py configs/dearkd/df_dearkd_ti.py
_base_ = ['./dearkd_ti.py', '../_base_/synthesis/df_dearkd_imagenet.py']

# The synthetic set: OUT/<class_000 ... class_999>/*.png, folder i = teacher class i.
train_dataloader = dict(dataset=dict(data_root='data/df_imagenet_synth', data_prefix=''))
