# DearKD-S: DeiT-S width (384) with 12 heads; otherwise as dearkd_ti.py.
_base_ = ['./dearkd_ti.py']
model = dict(student=dict(arch='small'))
