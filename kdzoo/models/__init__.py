from .classifier import Classifier
from .cnn.cifar_resnet import CifarResNet
from .distiller import Distiller
from .students.deit import DeiT
from .teacher import Teacher

__all__ = ['Classifier', 'CifarResNet', 'DeiT', 'Distiller', 'Teacher']
