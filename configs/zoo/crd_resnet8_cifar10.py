# CRD (Tian et al. ICLR 2020) from ResNet-20 to ResNet-8: both pooled layer3 outputs
# embedded in 128 dimensions against memory banks of the 5,000 training images, weight 0.8,
# 4,096 negatives (see crd_deit_micro_cifar10.py).
_base_ = ['../_base_/zoo/resnet8_distilled_cifar10.py']
model = dict(distill=dict(crd=dict(
    loss=dict(type='CRDLoss', num_samples=5000, student_channels=64, teacher_channels=64,
              num_negatives=4096), weight=0.8,
    inputs=dict(student_features='student.layer3', teacher_features='teacher.layer3'))))
