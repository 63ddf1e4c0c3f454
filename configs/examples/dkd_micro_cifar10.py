# DKD (Zhao et al., CVPR 2022) on the CPU-scale DeiT student of
# ../deit/deit_micro_distilled_cifar10.py: the DeiT term is replaced by kdzoo's DKDLoss
# (kdzoo/losses/dkd.py), read through the distillation head with the true labels. The
# paper's CIFAR settings: alpha 1, beta 8, tau 4; mixed with the base criterion at 0.5
# like DeiT's alpha.
#   python tools/train.py configs/examples/dkd_micro_cifar10.py
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None,
             distill=dict(dkd=dict(loss=dict(type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0),
                                   weight=0.5, mix=True)))
