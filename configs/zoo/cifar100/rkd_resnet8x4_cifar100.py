# RKD (Park et al. CVPR 2019) from resnet32x4 to resnet8x4: distance (25) and angle (50)
# relations of the pooled features (the inputs of both fc layers).
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(rkd=dict(
    loss=dict(type='RKDLoss'),
    inputs=dict(student_features='student.fc:input', teacher_features='teacher.fc:input'))))
