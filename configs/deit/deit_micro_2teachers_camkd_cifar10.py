# deit_micro_2teachers_cifar10.py with confidence-aware weights (Zhang et al. ICASSP 2022,
# CAMKDLoss): each sample's teachers weighed by their cross-entropy on its label.
_base_ = ['./deit_micro_2teachers_cifar10.py']
model = dict(distill=dict(kd=dict(loss=dict(_delete_=True, type='CAMKDLoss', tau=4.0))))
