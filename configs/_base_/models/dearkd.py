# DearKD-Ti (Chen et al., CVPR 2022): DeiT-Ti width with 12 heads, 8 MHCA + 4 MHSA blocks,
# distillation token; hard distillation from RegNetY-16GF (the 'distill' term of
# deit_distilled.py) plus the hidden term: MSE between the last MHCA block, aligned, and
# the teacher's stage s3 (1232 x 14 x 14 at 224, the student's 14 x 14 patch grid). The
# aligner's sizes are filled in from the two layers. A stage schedule (DistillStageHook)
# turns the terms off for stage 2; the distillation head is then trained on the labels.
_base_ = ['./deit_distilled.py']
model = dict(
    student=dict(type='DearKD', num_mhca_blocks=8),
    distill=dict(
        hidden_s3=dict(loss=dict(type='HiddenMSELoss'),
                       inputs=dict(student_features='student.blocks.7',
                                   teacher_features='teacher.s3'),
                       connectors=dict(student_features=dict(type='Aligner')))),
    idle_dist_head='labels',
)
