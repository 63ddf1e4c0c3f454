# Manifold distillation (Hao et al. NeurIPS 2022) at its paper's scale: DeiT-S
# (../../deit/deit_s.py: ImageNet-1k, 300 epochs) from CaiT-S24 (timm's
# 'cait_s24_224.fb_dist_in1k' weights, downloaded once). Three layer pairs, the student's
# blocks 3, 7 and 11 against the teacher's patch blocks 7, 15 and 23 (CaiT's patch blocks
# carry no class token), each weighted 1/3 as the released code averages over its pairs;
# the paper's logit term beside it is not part of this config.
_base_ = ['../../deit/deit_s.py']
pairs = dict(l3=(3, 7), l7=(7, 15), l11=(11, 23))
model = dict(
    type='Distiller',
    teacher=dict(type='Teacher', model='timm:cait_s24_224.fb_dist_in1k', pretrained=True),
    distill={name: dict(loss=dict(type='ManifoldLoss', student_prefix_tokens=1), weight=1 / 3,
                        inputs=dict(student_features=f'student.blocks.{s}',
                                    teacher_features=f'teacher.blocks.{t}'))
             for name, (s, t) in pairs.items()})
