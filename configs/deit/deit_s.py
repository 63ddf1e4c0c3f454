# DeiT-S, no distillation, ImageNet-1k, 300 epochs (DeiT paper, Table 1).
_base_ = ['./deit_ti.py']
model = dict(student=dict(arch='small'))
