# DeiT-Ti without distillation: the class token alone, trained on the labels.
model = dict(
    type='Classifier',
    student=dict(type='DeiT', arch='tiny', distilled=False, img_size=224, patch_size=16,
                 num_classes=1000, drop_path_rate=0.1),
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
)
