# KD (Hinton et al. 2015) from resnet32x4 to resnet8x4 on CIFAR-100: tau 4, batchmean, weight
# 0.9 against 0.1 for the labels (Tian et al. ICLR 2020, Table 1: 73.33 with KD, 72.50 without).
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(kd=dict(
    loss=dict(type='SoftDistillLoss', tau=4.0, reduction='batchmean'), weight=0.9, mix=True)))
