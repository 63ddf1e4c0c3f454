# deit_micro_distilled_cifar10_2e.py with soft instead of hard distillation: KL to the
# teacher's softened outputs on the distillation token, tau 3, alpha 0.1 (the DeiT paper's
# soft setting, section 5.2 / Table 3, as deit_b_distilled_soft.py).
_base_ = ['./deit_micro_distilled_cifar10_2e.py']
model = dict(distill_loss=dict(_delete_=True, type='SoftDistillLoss', tau=3.0, reduction='deit'),
             alpha=0.1)
