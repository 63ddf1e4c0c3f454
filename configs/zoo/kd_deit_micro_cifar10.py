# KD (Hinton et al. 2015) on the micro DeiT: KL to the ResNet-20's softened outputs at tau 4,
# per image (batchmean), on the distillation head, weight 0.9 against 0.1 for the labels
# (the classic CIFAR setting of Tian et al. ICLR 2020).
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(kd=dict(
    loss=dict(type='SoftDistillLoss', tau=4.0, reduction='batchmean'), weight=0.9, mix=True)))
