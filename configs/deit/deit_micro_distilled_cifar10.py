# The CPU-scale student of deit_micro_cifar10.py with the distillation token and hard
# distillation from the ResNet-20 teacher (trained on the full CIFAR-10 training set by
# resnet20_cifar10.py). Same data subset, schedule and seeds as the baseline.
_base_ = ['../_base_/models/deit_distilled_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_micro_20e.py', '../_base_/default_runtime.py']
model = dict(student=dict(arch=None, embed_dim=128, num_heads=4, depth=4))
train_dataloader = dict(dataset=dict(subset_ratio=0.1, subset_seed=0))
