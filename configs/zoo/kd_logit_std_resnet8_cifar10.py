# KD with logit standardisation (Sun et al. CVPR 2024) from ResNet-20 to ResNet-8: base
# temperature 2, otherwise as ./kd_resnet8_cifar10.py (see kd_logit_std_deit_micro_cifar10.py).
_base_ = ['./kd_resnet8_cifar10.py']
model = dict(distill=dict(kd=dict(loss=dict(tau=2.0, logit_std=True))))
