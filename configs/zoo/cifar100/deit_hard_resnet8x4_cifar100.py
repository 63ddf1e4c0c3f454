# DeiT's hard distillation (Touvron et al. ICML 2021) from resnet32x4 to resnet8x4: cross-
# entropy to the teacher's argmax, alpha 0.5.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill_loss=dict(type='HardDistillLoss'), alpha=0.5)
