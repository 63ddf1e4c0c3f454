# ./resnet8x4_cifar100.py distilled from resnet32x4 (7.4M parameters), trained by
# configs/zoo/cifar100/resnet32x4_cifar100.py (the last checkpoint of its work dir): the
# teacher-student pair of the CIFAR-100 tables. Each config adds its term.
_base_ = ['./resnet8x4_cifar100.py']
model = dict(
    type='Distiller',
    teacher=dict(type='Teacher', model=dict(type='CifarResNet', arch='resnet32x4',
                                            num_classes=100),
                 checkpoint='work_dirs/resnet32x4_cifar100', channels_last=True),
)
