# DearKD-Ti at 32x32 (4x4 patches, an 8x8 grid) on CIFAR-10 with the recipe of
# ../deit/deit_ti_cifar10.py (100 epochs). Teacher: the ResNet-20 of
# ../deit/resnet20_cifar10.py. Hidden term: the last MHCA block against layer3 (64 x 8 x 8,
# the student's grid). Stage 1 spans the paper's 250/300 of the epochs (1-83), stage 2 the
# rest.
_base_ = ['../_base_/models/dearkd_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_adamw_100e.py', '../_base_/default_runtime.py']
default_hooks = dict(distill_stage=dict(type='DistillStageHook', switch_ratio=250 / 300))
