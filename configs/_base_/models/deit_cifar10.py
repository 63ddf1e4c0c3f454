# DeiT-Ti width (dim 192, 3 heads, depth 12) at 32x32 with 4x4 patches for CIFAR-10,
# without distillation.
model = dict(
    type='Classifier',
    student=dict(type='DeiT', arch='tiny', distilled=False, img_size=32, patch_size=4,
                 num_classes=10, drop_path_rate=0.1),
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
)
