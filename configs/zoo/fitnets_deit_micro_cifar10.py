# FitNets (Romero et al. ICLR 2015) on the micro DeiT: the student's block 1 tokens,
# regressed by an Aligner onto the ResNet-20's layer2 hint (32 x 16 x 16); weight 100 (the
# common CIFAR benchmark setting), trained with the labels from the start rather than in the
# paper's separate hint stage.
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(fitnets=dict(
    loss=dict(type='FitNetsLoss'), weight=100.0,
    inputs=dict(student_features='student.blocks.1', teacher_features='teacher.layer2'),
    connectors=dict(student_features=dict(type='Aligner')))))
