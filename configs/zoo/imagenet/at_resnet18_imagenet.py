# Attention transfer (Zagoruyko and Komodakis ICLR 2017) from ResNet-34 to ResNet-18 on
# ImageNet: the attention maps of the four stages, weight 1000.
_base_ = ['../../_base_/zoo/resnet18_distilled_imagenet.py']
stages = ['layer1', 'layer2', 'layer3', 'layer4']
model = dict(distill=dict(at=dict(
    loss=dict(type='ATLoss'), weight=1000.0,
    inputs=dict(student_features=[f'student.{s}' for s in stages],
                teacher_features=[f'teacher.{s}' for s in stages]))))
