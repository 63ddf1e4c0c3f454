# RKD (Park et al. CVPR 2019) from ResNet-20 to ResNet-8: distance (25) and angle (50)
# relations of both networks' pooled features (the inputs of their fc).
_base_ = ['../_base_/zoo/resnet8_distilled_cifar10.py']
model = dict(distill=dict(rkd=dict(
    loss=dict(type='RKDLoss'),
    inputs=dict(student_features='student.fc:input', teacher_features='teacher.fc:input'))))
