# PKT (Passalis and Tefas ECCV 2018) from ResNet-20 to ResNet-8: the cosine-kernel
# conditional distributions of both pooled features; weight 30000.
_base_ = ['../_base_/zoo/resnet8_distilled_cifar10.py']
model = dict(distill=dict(pkt=dict(
    loss=dict(type='PKTLoss'), weight=30000.0,
    inputs=dict(student_features='student.fc:input', teacher_features='teacher.fc:input'))))
