# resnet8_cifar10.py as a Distiller with the ResNet-20 teacher of
# configs/deit/resnet20_cifar10.py (the last checkpoint of its work dir) and no term yet:
# the zoo's configs add one.
_base_ = ['./resnet8_cifar10.py']
model = dict(
    type='Distiller',
    teacher=dict(type='Teacher',
                 model=dict(type='CifarResNet', depth=20, widths=(16, 32, 64), num_classes=10),
                 checkpoint='work_dirs/resnet20_cifar10', channels_last=True),
)
