# ./resnet8_cifar10.py distilled from the ResNet-20 teacher; each zoo config adds its term.
_base_ = ['../models/resnet8_distilled_cifar10.py', '../datasets/cifar10_cnn.py',
          '../schedules/cifar10_micro_sgd_20e.py', '../default_runtime.py']
train_dataloader = dict(dataset=dict(subset_ratio=0.1, subset_seed=0))
