# DearKD-B: DeiT-B width (768) with 16 heads; otherwise as dearkd_ti.py.
_base_ = ['./dearkd_ti.py']
model = dict(student=dict(arch='base'))
