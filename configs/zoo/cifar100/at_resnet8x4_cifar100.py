# Attention transfer (Zagoruyko and Komodakis ICLR 2017) from resnet32x4 to resnet8x4: the
# attention maps of layer1-3, weight 1000.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(at=dict(
    loss=dict(type='ATLoss'), weight=1000.0,
    inputs=dict(student_features=['student.layer1', 'student.layer2', 'student.layer3'],
                teacher_features=['teacher.layer1', 'teacher.layer2', 'teacher.layer3']))))
