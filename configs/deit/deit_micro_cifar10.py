# CPU-scale student for the CIFAR-10 comparison in README.md: a DeiT-style ViT of width
# 128 (4 heads, depth 4, 4x4 patches at 32x32; 0.8M parameters) trained on a class-balanced
# 10% subset of the training images (500 per class) for 20 epochs, no distillation.
_base_ = ['../_base_/models/deit_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_micro_20e.py', '../_base_/default_runtime.py']
model = dict(student=dict(arch=None, embed_dim=128, num_heads=4, depth=4))
train_dataloader = dict(dataset=dict(subset_ratio=0.1, subset_seed=0))
