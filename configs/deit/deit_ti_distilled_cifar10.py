# DeiT-Ti width at 32x32 (4x4 patches) with the distillation token, hard distillation from
# the ResNet-20 teacher trained by resnet20_cifar10.py (its last checkpoint in that run's
# work dir). Same recipe as deit_ti_cifar10.py.
_base_ = ['./deit_ti_cifar10.py']

model = dict(
    _delete_=True,
    type='Distiller',
    model=dict(type='DeiT', arch='tiny', distilled=True, img_size=32, patch_size=4,
               num_classes=10, drop_path_rate=0.1),
    teacher=dict(type='Teacher',
                 model=dict(type='CifarResNet', depth=20, widths=(16, 32, 64), num_classes=10),
                 checkpoint='work_dirs/resnet20_cifar10', channels_last=True),
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
    distill_loss=dict(type='HardDistillLoss'),
    alpha=0.5,
)
