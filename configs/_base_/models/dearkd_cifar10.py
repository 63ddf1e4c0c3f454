# DearKD-Ti at 32x32 (4x4 patches, an 8x8 grid) for CIFAR-10: deit_distilled_cifar10.py
# with 12 heads, 8 MHCA blocks and the hidden term between the last MHCA block (aligned)
# and the ResNet-20's layer3 (64 x 8 x 8, the student's grid).
_base_ = ['./deit_distilled_cifar10.py']
model = dict(
    student=dict(type='DearKD', num_mhca_blocks=8),
    distill=dict(
        hidden_layer3=dict(loss=dict(type='HiddenMSELoss'),
                           inputs=dict(student_features='student.blocks.7',
                                       teacher_features='teacher.layer3'),
                           connectors=dict(student_features=dict(type='Aligner')))),
    idle_dist_head='labels',
)
