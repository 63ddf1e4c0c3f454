# The micro DeiT of deit_micro_distilled_cifar10.py distilled from two teachers, the
# ResNet-20 of resnet20_cifar10.py and the ResNet-56 of resnet56_cifar10.py
# (model.teachers, kdzoo/models/teachers.py): KD on the distillation head (tau 4, per image,
# weight 0.9 against 0.1 for the labels) towards the average of both teachers'
# probabilities (EnsembleKDLoss). Validation reports each teacher's accuracy
# (teacher/resnet20/top1, teacher/resnet56/top1). The _a, _b and _camkd children read one
# teacher or weigh them per sample; every one builds both teachers and runs those it reads.
_base_ = ['./deit_micro_distilled_cifar10.py']
cnn = dict(type='CifarResNet', widths=(16, 32, 64), num_classes=10)
model = dict(
    teacher=None, distill_loss=None,
    teachers=dict(
        resnet20=dict(type='Teacher', model=dict(cnn, depth=20), channels_last=True,
                      checkpoint='work_dirs/resnet20_cifar10'),
        resnet56=dict(type='Teacher', model=dict(cnn, depth=56), channels_last=True,
                      checkpoint='work_dirs/resnet56_cifar10')),
    distill=dict(kd=dict(
        loss=dict(type='EnsembleKDLoss', tau=4.0, average='probabilities'), weight=0.9,
        mix=True, inputs=dict(teacher_logits=['teachers.resnet20.logits',
                                              'teachers.resnet56.logits']))))
