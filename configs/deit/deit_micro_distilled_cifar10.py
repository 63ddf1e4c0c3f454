# The CPU-scale student of deit_micro_cifar10.py with the distillation token and hard
# distillation from the ResNet-20 teacher (trained on the full CIFAR-10 training set by
# resnet20_cifar10.py). Same data subset, schedule and seeds as the baseline.
_base_ = ['./deit_micro_cifar10.py']

model = dict(
    _delete_=True,
    type='Distiller',
    model=dict(type='DeiT', arch=None, embed_dim=128, num_heads=4, depth=4, distilled=True,
               img_size=32, patch_size=4, num_classes=10, drop_path_rate=0.1),
    teacher=dict(type='Teacher',
                 model=dict(type='CifarResNet', depth=20, widths=(16, 32, 64), num_classes=10),
                 checkpoint='work_dirs/resnet20_cifar10', channels_last=True),
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
    distill_loss=dict(type='HardDistillLoss'),
    alpha=0.5,
)
