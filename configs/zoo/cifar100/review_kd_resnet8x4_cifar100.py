# ReviewKD (Chen et al. CVPR 2021) from resnet32x4 to resnet8x4: layer1-3 fused by
# ReviewKDFusion against the teacher's layer1-3, hierarchical context loss, weight 1,
# warmed up over the first 20 epochs as in the reference code.
_base_ = ['../../_base_/zoo/resnet8x4_distilled_cifar100.py']
model = dict(distill=dict(review=dict(
    loss=dict(type='HCLLoss'), weight=1.0,
    inputs=dict(student_features=['student.layer1', 'student.layer2', 'student.layer3'],
                teacher_features=['teacher.layer1', 'teacher.layer2', 'teacher.layer3']),
    connectors=dict(student_features=dict(type='ReviewKDFusion')))))
default_hooks = dict(distill_stage=dict(type='DistillStageHook', schedule=dict(
    review=[dict(begin=0, end=20, start=0.05, stop=1.0), dict(begin=20, end=None, value=1.0)])))
