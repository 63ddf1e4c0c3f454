# KD with logit standardisation (Sun et al. CVPR 2024) on the micro DeiT: both logits
# z-scored per image, base temperature 2 (the paper's CIFAR value), otherwise as
# ./kd_deit_micro_cifar10.py (the paper weighs KD 9 against 0.1 for the labels; kdzoo keeps
# the KD row's 0.9 / 0.1 so that the two rows differ only in the standardisation and its
# base temperature).
_base_ = ['./kd_deit_micro_cifar10.py']
model = dict(distill=dict(kd=dict(loss=dict(tau=2.0, logit_std=True))))
