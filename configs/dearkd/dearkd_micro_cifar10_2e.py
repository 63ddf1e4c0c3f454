# The DearKD micro student of dearkd_micro_cifar10.py in the data-efficiency study, with
# the budget and subsets of ../deit/deit_micro_cifar10_2e.py (2 epochs at batch 64 over its
# own images, 25% by default); stage 1 in the first 250/300 of the steps.
_base_ = ['../_base_/models/dearkd_micro_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_micro_2e.py', '../_base_/default_runtime.py']
train_dataloader = dict(batch_size=64, dataset=dict(subset_ratio=0.25, subset_seed=0))
default_hooks = dict(distill_stage=dict(type='DistillStageHook', switch_ratio=250 / 300,
                                        by_epoch=False))
