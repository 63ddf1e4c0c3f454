# KD with logit standardisation (Sun et al. CVPR 2024) from resnet32x4 to resnet8x4: base
# temperature 2; the paper weighs KD 9 against 0.1 for the labels, kdzoo keeps 0.9 / 0.1
# (see ../kd_logit_std_deit_micro_cifar10.py).
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(kd=dict(
    loss=dict(type='SoftDistillLoss', tau=2.0, reduction='batchmean', logit_std=True),
    weight=0.9, mix=True)))
