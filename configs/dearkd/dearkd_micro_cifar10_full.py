# dearkd_micro_cifar10.py on all 50 000 training images with the budget of its 10% run:
# 782 steps of 128 images (2 epochs). Two epochs leave no epoch boundary near 250/300, so
# the stage switch is counted in steps: stage 1 in the first 85% (steps 1-665; the 10% run
# switches after 17 of its 20 epochs, also 85%), stage 2 in the rest.
_base_ = ['../_base_/models/dearkd_micro_cifar10.py', '../_base_/datasets/cifar10_deit.py',
          '../_base_/schedules/cifar10_micro_782steps.py', '../_base_/default_runtime.py']
default_hooks = dict(distill_stage=dict(type='DistillStageHook', switch_ratio=17 / 20,
                                        by_epoch=False))
