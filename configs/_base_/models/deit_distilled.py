# DeiT-Ti with the distillation token and hard distillation from RegNetY-16GF
# (timm 'regnety_160' with DeiT's teacher weights, downloaded once into torch.hub's cache,
# hash checked; a local copy: --cfg-options model.teacher.checkpoint=PATH).
# distill_loss + alpha is the one-line form of the term 'distill' (mix=True: the base
# criterion weighs 1 - alpha).
model = dict(
    type='Distiller',
    student=dict(type='DeiT', arch='tiny', distilled=True, img_size=224, patch_size=16,
                 num_classes=1000, drop_path_rate=0.1),
    teacher=dict(type='Teacher', model='timm:regnety_160',
                 checkpoint='https://dl.fbaipublicfiles.com/deit/regnety_160-a5fe301d.pth',
                 channels_last=True,
                 bf16=True),  # on a GPU; a CPU without native bf16 runs it faster in fp32
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.1),
    distill_loss=dict(type='HardDistillLoss'),
    alpha=0.5,
)
