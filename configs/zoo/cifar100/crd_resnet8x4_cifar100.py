# CRD (Tian et al. ICLR 2020) from resnet32x4 to resnet8x4: both pooled layer3 outputs (256
# wide) embedded in 128 dimensions against memory banks of the 50,000 training images (saved
# and resumed with the checkpoints), 16,384 negatives, temperature 0.07, weight 0.8.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(crd=dict(
    loss=dict(type='CRDLoss', num_samples=50000, student_channels=256, teacher_channels=256),
    weight=0.8,
    inputs=dict(student_features='student.layer3', teacher_features='teacher.layer3'))))
