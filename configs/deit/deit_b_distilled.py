# DeiT-B with distillation token, hard distillation from RegNetY-16GF, ImageNet-1k, 300 epochs.
_base_ = ['./deit_ti_distilled.py']
model = dict(student=dict(arch='base'))
