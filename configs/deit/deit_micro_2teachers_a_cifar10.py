# deit_micro_2teachers_cifar10.py with KD from the ResNet-20 alone (the ResNet-56 is built
# and evaluated, not run in training).
_base_ = ['./deit_micro_2teachers_cifar10.py']
model = dict(distill=dict(kd=dict(inputs=dict(teacher_logits=['teachers.resnet20.logits']))))
