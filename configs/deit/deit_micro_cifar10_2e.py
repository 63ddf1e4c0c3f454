# The data-efficiency study's baseline: the micro student of deit_micro_cifar10.py without
# distillation, 2 epochs at batch 64 over its own images (../_base_/schedules/
# cifar10_micro_2e.py), on a class-balanced 25% subset; the study sets subset_ratio to
# 0.05, 0.1, 0.25 and 0.5 (subset_seed 0 picks the smaller subsets from the larger).
_base_ = ['../_base_/models/deit_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_micro_2e.py', '../_base_/default_runtime.py']
model = dict(student=dict(arch=None, embed_dim=128, num_heads=4, depth=4))
train_dataloader = dict(batch_size=64, dataset=dict(subset_ratio=0.25, subset_seed=0))
