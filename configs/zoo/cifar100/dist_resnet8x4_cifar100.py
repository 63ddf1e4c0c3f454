# DIST (Huang et al. NeurIPS 2022) from resnet32x4 to resnet8x4: beta = gamma = 1, tau 4 (the
# paper's CIFAR-100 setting), weight 1 beside the labels.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(dist=dict(
    loss=dict(type='DISTLoss', beta=1.0, gamma=1.0, tau=4.0), weight=1.0)))
