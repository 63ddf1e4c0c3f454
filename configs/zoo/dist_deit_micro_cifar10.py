# DIST (Huang et al. NeurIPS 2022) on the micro DeiT: inter- and intra-class relations,
# beta = gamma = 1, tau 4 (the paper's CIFAR-100 setting), through the distillation head,
# weight 1 beside the label loss.
_base_ = ['../deit/deit_micro_distilled_cifar10.py']
model = dict(distill_loss=None, distill=dict(dist=dict(
    loss=dict(type='DISTLoss', beta=1.0, gamma=1.0, tau=4.0), weight=1.0)))
