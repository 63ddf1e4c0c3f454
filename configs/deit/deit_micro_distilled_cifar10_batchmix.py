# deit_micro_distilled_cifar10.py with DeiT's per-batch mixup/cutmix (one choice, lam and
# box per batch, partners shuffled within it) instead of the shipped per-pair mixing: the
# comparison in configs/deit/README.md, "Offline teacher". Replays only at the same number
# of processes and per-process batch, so it cannot share a teacher record.
_base_ = ['./deit_micro_distilled_cifar10.py']
data_preprocessor = dict(mix_mode='batch')
