from .bn_statistics import BNStatisticsLoss
from .cross_entropy import LabelSmoothCrossEntropy
from .dist import DISTLoss
from .dkd import DKDLoss
from .hidden import HiddenMSELoss
from .image_prior import ImagePriorLoss
from .intra_divergence import IntraDivergenceLoss
from .logit_distill import HardDistillLoss, SoftDistillLoss

__all__ = ['BNStatisticsLoss', 'DISTLoss', 'DKDLoss', 'HiddenMSELoss', 'ImagePriorLoss',
           'IntraDivergenceLoss', 'LabelSmoothCrossEntropy', 'HardDistillLoss',
           'SoftDistillLoss']
