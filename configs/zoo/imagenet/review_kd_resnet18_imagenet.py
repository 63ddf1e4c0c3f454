# ReviewKD (Chen et al. CVPR 2021) from ResNet-34 to ResNet-18 on ImageNet: the four stages
# fused by ReviewKDFusion against the teacher's, hierarchical context loss, weight 1.
_base_ = ['../../_base_/zoo/resnet18_distilled_imagenet.py']
stages = ['layer1', 'layer2', 'layer3', 'layer4']
model = dict(distill=dict(review=dict(
    loss=dict(type='HCLLoss'), weight=1.0,
    inputs=dict(student_features=[f'student.{s}' for s in stages],
                teacher_features=[f'teacher.{s}' for s in stages]),
    connectors=dict(student_features=dict(type='ReviewKDFusion')))))
