# ReviewKD (Chen et al. CVPR 2021) from ResNet-20 to ResNet-8: the student's layer1-3 fused
# by ReviewKDFusion against the teacher's layer1-3, hierarchical context loss, weight 1.
_base_ = ['../_base_/zoo/resnet8_distilled_cifar10.py']
model = dict(distill=dict(review=dict(
    loss=dict(type='HCLLoss'), weight=1.0,
    inputs=dict(student_features=['student.layer1', 'student.layer2', 'student.layer3'],
                teacher_features=['teacher.layer1', 'teacher.layer2', 'teacher.layer3']),
    connectors=dict(student_features=dict(type='ReviewKDFusion')))))
