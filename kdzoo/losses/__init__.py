from .bn_statistics import BNStatisticsLoss
from .cross_entropy import LabelSmoothCrossEntropy
from .hidden import HiddenMSELoss
from .image_prior import ImagePriorLoss
from .intra_divergence import IntraDivergenceLoss
from .logit_distill import HardDistillLoss, SoftDistillLoss

__all__ = ['BNStatisticsLoss', 'HiddenMSELoss', 'ImagePriorLoss', 'IntraDivergenceLoss',
           'LabelSmoothCrossEntropy', 'HardDistillLoss', 'SoftDistillLoss']
