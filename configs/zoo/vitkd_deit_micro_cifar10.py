# ViTKD (Yang et al. 2022) on the micro DeiT: blocks 0 and 1 mimic the ResNet-20's layer1
# and layer2 through linear projections, block 3 generates its layer3 from half-masked
# tokens; the released code's weights (alpha 3e-5, beta 3e-6, mask ratio 0.5). The student's
# 8x8 token grid is resized to each teacher map's grid (kdzoo/losses/vitkd.py).
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(vitkd=dict(
    loss=dict(type='ViTKDLoss', student_channels=[128, 128, 128], teacher_channels=[16, 32, 64],
              student_prefix_tokens=2),
    inputs=dict(student_features=['student.blocks.0', 'student.blocks.1', 'student.blocks.3'],
                teacher_features=['teacher.layer1', 'teacher.layer2', 'teacher.layer3']))))
