# CRD (Tian et al. ICLR 2020) on the micro DeiT: the student's final tokens (after its last
# LayerNorm, averaged over the patches) and the ResNet-20's pooled layer3 embedded in 128
# dimensions and contrasted against memory banks of the 5,000 training images (the banks
# are saved and resumed with the checkpoints); weight 0.8 (the paper's CIFAR setting),
# 4,096 negatives (the paper's 16,384 exceed this subset's size).
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(crd=dict(
    loss=dict(type='CRDLoss', num_samples=5000, student_channels=128, teacher_channels=64,
              num_negatives=4096, num_prefix_tokens=(2, 0)), weight=0.8,
    inputs=dict(student_features='student.norm', teacher_features='teacher.layer3'))))
