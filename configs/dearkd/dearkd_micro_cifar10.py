# CPU-scale DearKD for the CIFAR-10 comparison with ../deit/deit_micro_cifar10.py and
# ../deit/deit_micro_distilled_cifar10.py at the same budget: width 128, depth 4 (3 MHCA +
# 1 MHSA blocks), 8 heads (more heads than the DeiT micro's 4, as DearKD does; the
# parameter count is the same), the same 10% class-balanced subset, 20 epochs, schedule and
# seeds. Stage 1 in epochs 1-17 (250/300 of 20, rounded), stage 2 in 18-20. Hidden term:
# the last MHCA block against the ResNet-20's layer3 (64 x 8 x 8).
_base_ = ['../_base_/models/dearkd_micro_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_micro_20e.py', '../_base_/default_runtime.py']
train_dataloader = dict(dataset=dict(subset_ratio=0.1, subset_seed=0))
default_hooks = dict(distill_stage=dict(type='DistillStageHook', switch_ratio=250 / 300))
