# Similarity-preserving KD (Tung and Mori ICCV 2019) from ResNet-20 to ResNet-8: the batch
# similarity matrices of both layer3 outputs; weight 3000.
_base_ = ['../_base_/zoo/resnet8_distilled_cifar10.py']
model = dict(distill=dict(sp=dict(
    loss=dict(type='SPLoss'), weight=3000.0,
    inputs=dict(student_features='student.layer3', teacher_features='teacher.layer3'))))
