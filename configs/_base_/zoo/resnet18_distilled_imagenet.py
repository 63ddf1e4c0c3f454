# The ImageNet pair of the classic tables: timm's ResNet-18 (trained from scratch) distilled
# from ResNet-34 with torchvision's published weights (timm 'resnet34.tv_in1k', top-1
# 73.31), 100 epochs of SGD. Each config of configs/zoo/imagenet adds its term.
_base_ = ['../datasets/imagenet_cnn.py', '../schedules/imagenet_sgd_100e.py',
          '../default_runtime.py']
model = dict(
    type='Distiller',
    student=dict(type='TimmModel', model_name='resnet18', num_classes=1000),
    teacher=dict(type='Teacher', model='timm:resnet34.tv_in1k', pretrained=True,
                 channels_last=True),
    channels_last=True,
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.0),
)
