# RKD (Park et al. CVPR 2019) on the micro DeiT: distance (25) and angle (50) relations of
# the embeddings the heads read: the student's distillation token after its last LayerNorm
# (the input of head_dist) and the ResNet-20's pooled features (the input of its fc).
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(rkd=dict(
    loss=dict(type='RKDLoss'),
    inputs=dict(student_features='student.head_dist:input', teacher_features='teacher.fc:input'))))
