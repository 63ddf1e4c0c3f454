# The classic CIFAR-100 student resnet8x4 (1.2M parameters) trained on the labels, with the
# data and 240-epoch schedule of the CIFAR-100 distillation tables.
_base_ = ['../datasets/cifar100_cnn.py', '../schedules/cifar100_sgd_240e.py',
          '../default_runtime.py']
model = dict(
    type='Classifier',
    student=dict(type='CifarResNet', arch='resnet8x4', num_classes=100),
    channels_last=True,
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.0),
)
default_hooks = dict(checkpoint=dict(save_last=True))
