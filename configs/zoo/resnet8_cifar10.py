# The CNN-to-CNN column's baseline: ResNet-8 trained on the labels alone, with the data,
# budget and seeds of every *_resnet8_cifar10.py config.
_base_ = ['../_base_/zoo/resnet8_cifar10.py']
