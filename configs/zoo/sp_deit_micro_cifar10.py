# Similarity-preserving KD (Tung and Mori ICCV 2019) on the micro DeiT: the batch similarity
# matrices of the student's block 3 tokens and the ResNet-20's layer3; weight 3000 (the
# paper's CIFAR gamma).
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(sp=dict(
    loss=dict(type='SPLoss'), weight=3000.0,
    inputs=dict(student_features='student.blocks.3', teacher_features='teacher.layer3'))))
