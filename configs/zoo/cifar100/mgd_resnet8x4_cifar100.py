# MGD (Yang et al. ECCV 2022) from resnet32x4 to resnet8x4: the student's layer3, half
# masked, regenerates the teacher's layer3; alpha 7e-5 (the released ImageNet setting; the
# paper reports no CIFAR-100 result), mask ratio 0.5.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(mgd=dict(
    loss=dict(type='MGDLoss', student_channels=256, teacher_channels=256),
    inputs=dict(student_features='student.layer3', teacher_features='teacher.layer3'))))
