# DKD (Zhao et al. CVPR 2022) on the micro DeiT: alpha 1, beta 8, tau 4 (the paper's CIFAR
# setting), read through the distillation head, added to the label loss with weight 1. The
# paper's linear warm-up of the DKD weight over 20 of 240 epochs is not used.
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(dkd=dict(
    loss=dict(type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0), weight=1.0)))
