from .cross_entropy import LabelSmoothCrossEntropy
from .hidden import HiddenMSELoss
from .logit_distill import HardDistillLoss, SoftDistillLoss

__all__ = ['HiddenMSELoss', 'LabelSmoothCrossEntropy', 'HardDistillLoss', 'SoftDistillLoss']
