# DearKD-Ti at 32x32 (4x4 patches, an 8x8 grid) on CIFAR-10 with the recipe of
# ../deit/deit_ti_cifar10.py (100 epochs). Teacher: the ResNet-20 of
# ../deit/resnet20_cifar10.py (the last checkpoint of its work dir). Hidden pair: the last
# MHCA block against layer3 (64 x 8 x 8, the student's grid). Stage 1 spans the paper's
# 250/300 of the epochs (1-83), stage 2 the rest.
# Teacher, criterion, hard distillation and alpha: those of deit_ti_distilled_cifar10.py.
_base_ = ['../deit/deit_ti_distilled_cifar10.py']

model = dict(
    type='EarlyDistiller',
    model=dict(type='DearKD', num_mhca_blocks=8),
    hidden_distill=[
        dict(name='layer3', student_layer='blocks.7', teacher_layer='layer3',
             aligner=dict(type='Aligner', teacher_channels=64),
             loss=dict(type='HiddenMSELoss'), weight=1.0),
    ],
    stage2_dist_target='labels',
)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.rel_pos_weight': dict(decay_mult=0.0)}))
custom_hooks = [dict(type='ProgressBarHook'),
                dict(type='DistillStageHook', switch_ratio=250 / 300)]
model_wrapper_cfg = dict(type='kdzoo.DistillerDDP', find_unused_parameters=True)
