# DearKD-Ti at 32x32 (4x4 patches, an 8x8 grid) on CIFAR-10 with the recipe of
# ../deit/deit_ti_cifar10.py (100 epochs). Teacher: the ResNet-20 of
# ../deit/resnet20_cifar10.py (the last checkpoint of its work dir). Hidden pair: the last
# MHCA block against layer3 (64 x 8 x 8, the student's grid). Stage 1 spans the paper's
# 250/300 of the epochs (1-83), stage 2 the rest.
_base_ = ['../deit/deit_ti_cifar10.py']

model = dict(
    _delete_=True,
    type='EarlyDistiller',
    model=dict(type='DearKD', arch='tiny', num_mhca_blocks=8, distilled=True, img_size=32,
               patch_size=4, num_classes=10, drop_path_rate=0.1),
    teacher=dict(type='Teacher',
                 model=dict(type='CifarResNet', depth=20, widths=(16, 32, 64), num_classes=10),
                 checkpoint='work_dirs/resnet20_cifar10', channels_last=True),
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
    distill_loss=dict(type='HardDistillLoss'),
    alpha=0.5,
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
