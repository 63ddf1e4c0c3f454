# DearKD-Ti (Chen et al., CVPR 2022) on ImageNet-1k, 300 epochs with the DeiT recipe:
# DeiT-Ti width with 12 heads, 8 MHCA + 4 MHSA blocks, distillation token. Stage 1
# (epochs 1-250): labels + hard distillation from RegNetY-16GF + hidden-layer MSE between
# the last MHCA block (aligned) and the teacher's stage s3; stage 2 (epochs 251-300):
# labels only, the teacher is not run. Choices the paper leaves open: README.md.
_base_ = ['../_base_/datasets/imagenet_deit.py', '../_base_/schedules/deit_adamw_300e.py',
          '../_base_/default_runtime.py']

switch_epoch = 250
model = dict(
    type='EarlyDistiller',
    model=dict(type='DearKD', arch='tiny', num_mhca_blocks=8, distilled=True, img_size=224,
               patch_size=16, num_classes=1000, drop_path_rate=0.1),
    # DeiT's teacher weights: https://dl.fbaipublicfiles.com/deit/regnety_160-a5fe301d.pth
    teacher=dict(type='Teacher', model='timm:regnety_160',
                 checkpoint='checkpoints/regnety_160-a5fe301d.pth', channels_last=True),
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
    distill_loss=dict(type='HardDistillLoss'),
    alpha=0.5,
    # regnety_160 at 224: s3 is 1232 x 14 x 14, the student's 14 x 14 patch grid.
    hidden_distill=[
        dict(name='s3', student_layer='blocks.7', teacher_layer='s3',
             aligner=dict(type='Aligner', teacher_channels=1232),
             loss=dict(type='HiddenMSELoss'), weight=1.0),
    ],
    stage2_dist_target='labels',
)
# The positional term of MHCA is, like pos_embed, exempt from weight decay.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.rel_pos_weight': dict(decay_mult=0.0)}))
custom_hooks = [dict(type='ProgressBarHook'),
                dict(type='DistillStageHook', switch_epoch=switch_epoch)]
# Stage 2 leaves the aligners without gradients, which DDP must be told about.
model_wrapper_cfg = dict(type='kdzoo.DistillerDDP', find_unused_parameters=True)
