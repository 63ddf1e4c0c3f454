# DIST (Huang et al. NeurIPS 2022) from ResNet-34 to ResNet-18 on ImageNet: beta = gamma = 1,
# tau 1 (the paper's ImageNet setting), weight 1 beside the labels.
_base_ = ['../../_base_/zoo/resnet18_distilled_imagenet.py']
model = dict(distill=dict(dist=dict(
    loss=dict(type='DISTLoss', beta=1.0, gamma=1.0, tau=1.0), weight=1.0)))
