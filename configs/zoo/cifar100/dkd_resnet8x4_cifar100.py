# DKD (Zhao et al. CVPR 2022) from resnet32x4 to resnet8x4: alpha 1, beta 8, tau 4, weight 1
# beside the labels; the paper's linear warm-up over the first 20 epochs as a stage schedule.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(dkd=dict(
    loss=dict(type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0), weight=1.0)))
default_hooks = dict(distill_stage=dict(type='DistillStageHook', schedule=dict(
    dkd=[dict(begin=0, end=20, start=0.05, stop=1.0), dict(begin=20, end=None, value=1.0)])))
