from .cross_entropy import LabelSmoothCrossEntropy
from .logit_distill import HardDistillLoss, SoftDistillLoss

__all__ = ['LabelSmoothCrossEntropy', 'HardDistillLoss', 'SoftDistillLoss']
