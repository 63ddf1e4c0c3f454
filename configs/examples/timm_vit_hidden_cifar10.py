# A timm ViT as the student (vit_tiny_patch16_224 at 32x32 with 4x4 patches, 10 classes)
# with DeiT's hard distillation through its class head and a hidden term: its block 11,
# aligned, against the ResNet-20's layer3 (64 x 8 x 8, the student's 8 x 8 grid). The
# aligner's widths and timm's single prefix token are filled in.
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(
    student=dict(_delete_=True, type='TimmModel', model_name='vit_tiny_patch16_224',
                 img_size=32, patch_size=4, num_classes=10, drop_path_rate=0.1),
    distill=dict(hidden_layer3=dict(loss=dict(type='HiddenMSELoss'),
                                    inputs=dict(student_features='student.blocks.11',
                                                teacher_features='teacher.layer3'),
                                    connectors=dict(student_features=dict(type='Aligner')))))
