# DeiT-Ti with distillation token, hard distillation from RegNetY-16GF, ImageNet-1k, 300 epochs.
_base_ = ['../_base_/models/deit_distilled.py', '../_base_/datasets/imagenet_deit.py',
          '../_base_/schedules/deit_adamw_300e.py', '../_base_/default_runtime.py']
