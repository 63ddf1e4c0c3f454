# The CIFAR-100 teacher of the classic tables: resnet32x4 trained on the labels (240 epochs),
# saved to work_dirs/resnet32x4_cifar100 for the *_resnet8x4_cifar100.py students.
_base_ = ['../../_base_/zoo/resnet8x4_cifar100.py']
model = dict(student=dict(arch='resnet32x4'))
