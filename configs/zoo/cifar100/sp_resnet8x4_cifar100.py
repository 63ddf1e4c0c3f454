# Similarity-preserving KD (Tung and Mori ICCV 2019) from resnet32x4 to resnet8x4: the batch
# similarity matrices of both layer3 outputs, weight 3000.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(sp=dict(
    loss=dict(type='SPLoss'), weight=3000.0,
    inputs=dict(student_features='student.layer3', teacher_features='teacher.layer3'))))
