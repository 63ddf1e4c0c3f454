# The second CNN teacher of the two-teacher CIFAR-10 configs (deit_micro_2teachers_cifar10.py):
# ResNet-56 (He et al. 2016; 0.86M parameters), trained like resnet20_cifar10.py on the full
# training set; its checkpoints go to work_dirs/resnet56_cifar10.
_base_ = ['./resnet20_cifar10.py']
model = dict(student=dict(depth=56))
