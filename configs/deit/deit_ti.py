# DeiT-Ti, no distillation, ImageNet-1k, 300 epochs (DeiT paper, Table 1).
_base_ = ['../_base_/models/deit.py', '../_base_/datasets/imagenet_deit.py',
          '../_base_/schedules/deit_adamw_300e.py', '../_base_/default_runtime.py']
