# The zoo's CNN-to-CNN column: ResNet-8 on the 10% class-balanced CIFAR-10 subset of the
# micro DeiT, 20 epochs (800 steps), crop and flip, SGD; no distillation.
_base_ = ['../models/resnet8_cifar10.py', '../datasets/cifar10_cnn.py',
          '../schedules/cifar10_micro_sgd_20e.py', '../default_runtime.py']
train_dataloader = dict(dataset=dict(subset_ratio=0.1, subset_seed=0))
