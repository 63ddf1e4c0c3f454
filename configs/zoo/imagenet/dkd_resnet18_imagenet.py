# DKD (Zhao et al. CVPR 2022) from ResNet-34 to ResNet-18 on ImageNet: alpha 0.5, beta 0.5,
# tau 1 (the paper's ImageNet setting), weight 1 beside the labels, no warm-up.
_base_ = ['../../_base_/zoo/resnet18_distilled_imagenet.py']
model = dict(distill=dict(dkd=dict(
    loss=dict(type='DKDLoss', alpha=0.5, beta=0.5, tau=1.0), weight=1.0)))
