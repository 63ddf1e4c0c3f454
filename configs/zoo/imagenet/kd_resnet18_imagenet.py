# KD (Hinton et al. 2015) from ResNet-34 to ResNet-18 on ImageNet: tau 1, KL weight 0.5
# against 0.5 for the labels (the setting of Zhao et al. CVPR 2022 / mdistiller's table).
_base_ = ['../../_base_/zoo/resnet18_distilled_imagenet.py']
model = dict(distill=dict(kd=dict(
    loss=dict(type='SoftDistillLoss', tau=1.0, reduction='batchmean'), weight=0.5, mix=True)))
