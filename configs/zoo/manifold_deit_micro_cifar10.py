# Manifold distillation (Hao et al. NeurIPS 2022) on the micro DeiT: intra-image,
# inter-image and randomly sampled patch relations of block 3 against the ResNet-20's layer3
# (both 8x8), the released script's weights 4 / 0.1 / 0.2 and 192 sampled patches.
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(manifold=dict(
    loss=dict(type='ManifoldLoss', student_prefix_tokens=2),
    inputs=dict(student_features='student.blocks.3', teacher_features='teacher.layer3'))))
