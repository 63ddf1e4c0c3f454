# PKT (Passalis and Tefas ECCV 2018) from resnet32x4 to resnet8x4: cosine-kernel
# conditional distributions of the pooled features, weight 30000.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(pkt=dict(
    loss=dict(type='PKTLoss'), weight=30000.0,
    inputs=dict(student_features='student.fc:input', teacher_features='teacher.fc:input'))))
