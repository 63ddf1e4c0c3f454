from .aligner import Aligner
from .classifier import Classifier
from .cnn.cifar_resnet import CifarResNet
from .distiller import Distiller
from .early_distiller import EarlyDistiller
from .recorder import FeatureRecorder
from .students.dearkd import DearKD
from .students.deit import DeiT
from .students.mhca import MHCA
from .teacher import Teacher

__all__ = ['Aligner', 'Classifier', 'CifarResNet', 'DearKD', 'DeiT', 'Distiller',
           'EarlyDistiller', 'FeatureRecorder', 'MHCA', 'Teacher']
