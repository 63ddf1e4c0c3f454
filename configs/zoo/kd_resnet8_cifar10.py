# KD (Hinton et al. 2015) from ResNet-20 to ResNet-8: tau 4, batchmean, weight 0.9 against
# 0.1 for the labels (the classic CIFAR setting of Tian et al. ICLR 2020).
_base_ = ['../_base_/zoo/resnet8_distilled_cifar10.py']
model = dict(distill=dict(kd=dict(
    loss=dict(type='SoftDistillLoss', tau=4.0, reduction='batchmean'), weight=0.9, mix=True)))
