# PKT (Passalis and Tefas ECCV 2018) on the micro DeiT: the cosine-kernel conditional
# distributions of the student's distillation-token embedding (the input of head_dist) and
# the ResNet-20's pooled features; weight 30000 (the common CIFAR benchmark setting).
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(pkt=dict(
    loss=dict(type='PKTLoss'), weight=30000.0,
    inputs=dict(student_features='student.head_dist:input', teacher_features='teacher.fc:input'))))
