# CIFAR ResNet-8 (He et al. 2016; 16/32/64 wide, 78k parameters) for CIFAR-10, the CNN
# student of the zoo's CNN-to-CNN column; no distillation.
model = dict(
    type='Classifier',
    student=dict(type='CifarResNet', arch='resnet8', num_classes=10),
    channels_last=True,
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.0),
)
