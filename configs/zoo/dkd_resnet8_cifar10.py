# DKD (Zhao et al. CVPR 2022) from ResNet-20 to ResNet-8: alpha 1, beta 8, tau 4, weight 1
# beside the label loss (no warm-up; see dkd_deit_micro_cifar10.py).
_base_ = ['../_base_/zoo/resnet8_distilled_cifar10.py']
model = dict(distill=dict(dkd=dict(
    loss=dict(type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0), weight=1.0)))
