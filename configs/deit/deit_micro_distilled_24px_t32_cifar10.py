# The 24 px student of deit_micro_distilled_24px_cifar10.py with the ResNet-20 teacher at
# 32 px of the same crop: the teacher's view (Teacher(view=...), kdzoo/datasets/views.py)
# shares the crop, flip, RandAugment, erasing and mixing with the student's image, which is
# that view resized to 24. In validation the teacher takes the student's images at 32 px.
_base_ = ['./deit_micro_distilled_24px_cifar10.py']
model = dict(teacher=dict(view=dict(size=32)))
