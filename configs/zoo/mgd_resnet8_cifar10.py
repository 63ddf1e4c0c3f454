# MGD (Yang et al. ECCV 2022) from ResNet-20 to ResNet-8: the student's layer3, half
# masked, regenerates the teacher's layer3; alpha 7e-5, mask ratio 0.5.
_base_ = ['../_base_/zoo/resnet8_distilled_cifar10.py']
model = dict(distill=dict(mgd=dict(
    loss=dict(type='MGDLoss', student_channels=64, teacher_channels=64),
    inputs=dict(student_features='student.layer3', teacher_features='teacher.layer3'))))
