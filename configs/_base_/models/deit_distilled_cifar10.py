# deit_cifar10.py with the distillation token and hard distillation from the ResNet-20
# teacher trained by configs/deit/resnet20_cifar10.py (the last checkpoint of its work dir).
_base_ = ['./deit_cifar10.py']
model = dict(
    type='Distiller',
    student=dict(distilled=True),
    teacher=dict(type='Teacher',
                 model=dict(type='CifarResNet', depth=20, widths=(16, 32, 64), num_classes=10),
                 checkpoint='work_dirs/resnet20_cifar10', channels_last=True),
    distill_loss=dict(type='HardDistillLoss'),
    alpha=0.5,
)
