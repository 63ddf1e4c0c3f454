# DeiT-Ti width (dim 192, 3 heads, depth 12) at 32x32 with 4x4 patches on CIFAR-10,
# no distillation; DeiT recipe (AdamW, cosine, label smoothing, RandAugment, mixup/cutmix,
# random erasing) at batch 128 with lr 5e-4 x 128/512, 100 epochs.
_base_ = ['../_base_/models/deit_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_adamw_100e.py', '../_base_/default_runtime.py']
