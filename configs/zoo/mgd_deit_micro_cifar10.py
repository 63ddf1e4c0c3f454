# MGD (Yang et al. ECCV 2022) on the micro DeiT: the student's block 3 tokens, laid out on
# their 8x8 grid, half masked, regenerate the ResNet-20's layer3 (64 x 8 x 8); alpha 7e-5
# (the released ImageNet classification setting) and mask ratio 0.5.
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(mgd=dict(
    loss=dict(type='MGDLoss', student_channels=128, teacher_channels=64, num_prefix_tokens=2),
    inputs=dict(student_features='student.blocks.3', teacher_features='teacher.layer3'))))
