# MGD (Yang et al. ECCV 2022) from ResNet-34 to ResNet-18 on ImageNet, its paper's
# classification setting: the student's layer4, half masked, regenerates the teacher's
# layer4 (512 x 7 x 7); alpha 7e-5.
_base_ = ['../../_base_/zoo/resnet18_distilled_imagenet.py']
model = dict(distill=dict(mgd=dict(
    loss=dict(type='MGDLoss', student_channels=512, teacher_channels=512),
    inputs=dict(student_features='student.layer4', teacher_features='teacher.layer4'))))
