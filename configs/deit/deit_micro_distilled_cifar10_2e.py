# deit_micro_cifar10_2e.py with the distillation token and hard distillation from the
# ResNet-20 teacher (as deit_micro_distilled_cifar10.py); same subsets and budget.
_base_ = ['../_base_/models/deit_distilled_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_micro_2e.py', '../_base_/default_runtime.py']
model = dict(student=dict(arch=None, embed_dim=128, num_heads=4, depth=4))
train_dataloader = dict(batch_size=64, dataset=dict(subset_ratio=0.25, subset_seed=0))
