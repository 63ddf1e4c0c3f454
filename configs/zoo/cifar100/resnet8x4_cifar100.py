# The CIFAR-100 tables' student without distillation: resnet8x4 on the labels, 240 epochs.
_base_ = ['../../_base_/zoo/resnet8x4_cifar100.py']
