# FitNets (Romero et al. ICLR 2015) from resnet32x4 to resnet8x4: the student's layer2
# regressed by a 1x1 convolution + BatchNorm onto the teacher's layer2 hint, weight 100.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(fitnets=dict(
    loss=dict(type='FitNetsLoss'), weight=100.0,
    inputs=dict(student_features='student.layer2', teacher_features='teacher.layer2'),
    connectors=dict(student_features=dict(type='ConvConnector')))))
