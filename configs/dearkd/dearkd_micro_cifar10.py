# CPU-scale DearKD for the CIFAR-10 comparison with ../deit/deit_micro_cifar10.py and
# ../deit/deit_micro_distilled_cifar10.py at the same budget: width 128, depth 4 (3 MHCA +
# 1 MHSA blocks), 8 heads (more heads than the DeiT micro's 4, as DearKD does; the
# parameter count is the same), 4x4 patches at 32x32, the same 10% class-balanced subset,
# 20 epochs, schedule and seeds. Stage 1 in epochs 1-17 (250/300 of 20, rounded), stage 2
# in 18-20. Hidden pair: the last MHCA block against the ResNet-20's layer3 (64 x 8 x 8).
# Teacher, criterion, hard distillation and alpha: those of deit_micro_distilled_cifar10.py.
_base_ = ['../deit/deit_micro_distilled_cifar10.py']

model = dict(
    type='EarlyDistiller',
    model=dict(type='DearKD', num_heads=8, num_mhca_blocks=3),
    hidden_distill=[
        dict(name='layer3', student_layer='blocks.2', teacher_layer='layer3',
             aligner=dict(type='Aligner', teacher_channels=64),
             loss=dict(type='HiddenMSELoss'), weight=1.0),
    ],
    stage2_dist_target='labels',
)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.rel_pos_weight': dict(decay_mult=0.0)}))
custom_hooks = [dict(type='ProgressBarHook'),
                dict(type='DistillStageHook', switch_ratio=250 / 300)]
model_wrapper_cfg = dict(type='kdzoo.DistillerDDP', find_unused_parameters=True)
