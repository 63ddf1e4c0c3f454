# CRD (Tian et al. ICLR 2020) from ResNet-34 to ResNet-18 on ImageNet: the pooled features
# (the inputs of both fc layers, 512 wide) embedded in 128 dimensions against memory banks
# of the 1,281,167 training images (1.3 GB in every checkpoint), 16,384 negatives, weight 0.8.
_base_ = ['../../_base_/zoo/resnet18_distilled_imagenet.py']
model = dict(distill=dict(crd=dict(
    loss=dict(type='CRDLoss', num_samples=1281167, student_channels=512, teacher_channels=512),
    weight=0.8, inputs=dict(student_features='student.fc:input',
                            teacher_features='teacher.fc:input'))))
