# DearKD-Ti (Chen et al., CVPR 2022) on ImageNet-1k, 300 epochs with the DeiT recipe:
# DeiT-Ti width with 12 heads, 8 MHCA + 4 MHSA blocks, distillation token. Stage 1
# (epochs 1-250): labels + hard distillation from RegNetY-16GF + hidden-layer MSE between
# the last MHCA block (aligned) and the teacher's stage s3; stage 2 (epochs 251-300):
# labels only, the teacher is not run. Choices the paper leaves open: README.md.
_base_ = ['../_base_/models/dearkd.py', '../_base_/datasets/imagenet_deit.py',
          '../_base_/schedules/deit_adamw_300e.py', '../_base_/default_runtime.py']
default_hooks = dict(distill_stage=dict(type='DistillStageHook', switch_epoch=250))
