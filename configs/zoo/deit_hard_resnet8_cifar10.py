# DeiT's hard distillation (Touvron et al. ICML 2021) from ResNet-20 to ResNet-8: cross-
# entropy to the teacher's argmax on the student's only head, alpha 0.5.
_base_ = ['../_base_/zoo/resnet8_distilled_cifar10.py']
model = dict(distill_loss=dict(type='HardDistillLoss'), alpha=0.5)
