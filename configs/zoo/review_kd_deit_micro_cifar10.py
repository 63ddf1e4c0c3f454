# ReviewKD (Chen et al. CVPR 2021) on the micro DeiT: the student's blocks 1-3 fused from
# the deepest up by attention-based fusion (ReviewKDFusion, kdzoo/models/review_kd.py) and
# compared with the ResNet-20's layer1-3 by the hierarchical context loss, weight 1 (the
# CIFAR setting of the reference code; its warm-up over 20 of 240 epochs is not used).
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(review=dict(
    loss=dict(type='HCLLoss'), weight=1.0,
    inputs=dict(student_features=['student.blocks.1', 'student.blocks.2', 'student.blocks.3'],
                teacher_features=['teacher.layer1', 'teacher.layer2', 'teacher.layer3']),
    connectors=dict(student_features=dict(type='ReviewKDFusion')))))
