# CNN-to-CNN distillation: timm's ResNet-18 as the student of the ResNet-20 teacher, with
# hard distillation and a FitNets-style hint (Romero et al., ICLR 2015): the student's
# layer1 (64 x 8 x 8 at 32 px) through a 1x1 convolution + BatchNorm connector against the
# teacher's layer3 (64 x 8 x 8). Hint weight 1.
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(
    student=dict(_delete_=True, type='TimmModel', model_name='resnet18', num_classes=10),
    distill=dict(hint=dict(loss=dict(type='HiddenMSELoss'),
                           inputs=dict(student_features='student.layer1',
                                       teacher_features='teacher.layer3'),
                           connectors=dict(student_features=dict(type='ConvConnector')))))
