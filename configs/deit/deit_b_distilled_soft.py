# DeiT-B with distillation token and soft distillation (KL, tau 3, alpha 0.1: the paper's
# soft-distillation setting, section 5.2 / Table 3).
_base_ = ['./deit_b_distilled.py']
model = dict(distill_loss=dict(_delete_=True, type='SoftDistillLoss', tau=3.0, reduction='deit'),
             alpha=0.1)
