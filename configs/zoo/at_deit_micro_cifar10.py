# Attention transfer (Zagoruyko and Komodakis ICLR 2017) on the micro DeiT: the spatial
# attention maps (sum of squared activations over channels) of blocks 1-3, on their 8x8
# grid resized to the teacher's, against the ResNet-20's layer1-3; weight 1000.
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(at=dict(
    loss=dict(type='ATLoss', num_prefix_tokens=(2, 0)), weight=1000.0,
    inputs=dict(student_features=['student.blocks.1', 'student.blocks.2', 'student.blocks.3'],
                teacher_features=['teacher.layer1', 'teacher.layer2', 'teacher.layer3']))))
