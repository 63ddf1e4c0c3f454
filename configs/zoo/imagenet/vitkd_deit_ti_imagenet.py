# ViTKD (Yang et al. 2022) at its paper's scale: DeiT-Ti (../../deit/deit_ti.py: ImageNet-1k,
# 300 epochs, no distillation token) from DeiT III-S (timm's 'deit3_small_patch16_224.fb_in1k'
# weights, downloaded once), blocks 0 and 1 mimicking the teacher's and block 11 generating
# the teacher's block 11 from half-masked tokens, with the released code's weights (alpha
# 3e-5, beta 3e-6). The paper adds NKD on the logits for its headline numbers; this config
# is ViTKD alone.
_base_ = ['../../deit/deit_ti.py']
blocks = ['blocks.0', 'blocks.1', 'blocks.11']
model = dict(
    type='Distiller',
    teacher=dict(type='Teacher', model='timm:deit3_small_patch16_224.fb_in1k', pretrained=True),
    distill=dict(vitkd=dict(
        loss=dict(type='ViTKDLoss', student_channels=[192] * 3, teacher_channels=[384] * 3,
                  student_prefix_tokens=1, teacher_prefix_tokens=1),
        inputs=dict(student_features=[f'student.{b}' for b in blocks],
                    teacher_features=[f'teacher.{b}' for b in blocks]))))
