from .attention_transfer import ATLoss
from .bn_statistics import BNStatisticsLoss
from .crd import CRDLoss
from .cross_entropy import LabelSmoothCrossEntropy
from .dist import DISTLoss
from .dkd import DKDLoss
from .ensemble import CAMKDLoss, EnsembleKDLoss
from .fitnets import FitNetsLoss
from .hidden import HiddenMSELoss
from .image_prior import ImagePriorLoss
from .intra_divergence import IntraDivergenceLoss
from .logit_distill import HardDistillLoss, SoftDistillLoss
from .manifold import ManifoldLoss
from .mgd import MGDLoss
from .pkt import PKTLoss
from .review_kd import HCLLoss
from .rkd import RKDLoss
from .similarity_preserving import SimilarityPreservingLoss, SPLoss
from .vitkd import ViTKDLoss

__all__ = ['ATLoss', 'BNStatisticsLoss', 'CAMKDLoss', 'CRDLoss', 'DISTLoss', 'DKDLoss',
           'EnsembleKDLoss', 'FitNetsLoss', 'HCLLoss', 'HardDistillLoss', 'HiddenMSELoss',
           'ImagePriorLoss', 'IntraDivergenceLoss', 'LabelSmoothCrossEntropy', 'MGDLoss',
           'ManifoldLoss', 'PKTLoss', 'RKDLoss', 'SPLoss', 'SimilarityPreservingLoss',
           'SoftDistillLoss', 'ViTKDLoss']
