from .aligner import Aligner
from .classifier import Classifier
from .cnn.cifar_resnet import CifarResNet
from .connectors import ConvConnector
from .distill_term import DistillTerm
from .distiller import Distiller
from .recorder import FeatureRecorder
from .replay_preprocessor import ReplayClsDataPreprocessor
from .review_kd import ReviewKDFusion
from .sources import DEFAULT_BINDINGS, Source, parse_source
from .students.dearkd import DearKD
from .students.deit import DeiT
from .students.mhca import MHCA
from .students.timm_model import timm_model
from .students import timm_registry  # noqa: F401  (timm.create_model('dearkd_tiny'))
from .teacher import Teacher

__all__ = ['Aligner', 'Classifier', 'CifarResNet', 'ConvConnector', 'DEFAULT_BINDINGS',
           'DearKD', 'DeiT', 'DistillTerm', 'Distiller', 'FeatureRecorder', 'MHCA',
           'ReplayClsDataPreprocessor', 'ReviewKDFusion', 'Source', 'Teacher', 'parse_source', 'timm_model']
