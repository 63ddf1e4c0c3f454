# DeiT-Ti width at 32x32 (4x4 patches) with the distillation token, hard distillation from
# the ResNet-20 teacher trained by resnet20_cifar10.py (its last checkpoint in that run's
# work dir). Same recipe as deit_ti_cifar10.py.
_base_ = ['../_base_/models/deit_distilled_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_adamw_100e.py', '../_base_/default_runtime.py']
