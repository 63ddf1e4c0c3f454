# deit_micro_distilled_cifar10.py on all 50 000 training images with the budget of its
# 10% run: 782 steps of 128 images; the schedule of deit_micro_cifar10_full.py.
_base_ = ['../_base_/models/deit_distilled_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_micro_782steps.py', '../_base_/default_runtime.py']
model = dict(student=dict(arch=None, embed_dim=128, num_heads=4, depth=4))
