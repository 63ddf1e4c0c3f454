"""The optimizer of a distillation run: the student and the terms' connectors, never the
teacher."""
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor

from kdzoo.registry import OPTIM_WRAPPER_CONSTRUCTORS


class _WithoutTeacher(nn.Module):
    """The children of a model except its teacher, under their own names (so that
    ``paramwise_cfg`` keys such as '.pos_embed' match as on the model)."""

    def __init__(self, model):
        super().__init__()
        for name, child in model.named_children():
            if name != 'teacher':
                self.add_module(name, child)
        for name, param in model.named_parameters(recurse=False):
            self.register_parameter(name, param)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillerOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor on the model without its frozen teacher.

    The teacher is never optimised, so it has no place in the optimizer's parameter
    groups; leaving it out also keeps mmengine from logging one "is skipped since its
    requires_grad=False" warning per teacher parameter (65 for a ResNet-20, 251 for
    RegNetY-16GF) when ``paramwise_cfg`` is set.
    """

    def __call__(self, model):
        if hasattr(model, 'module'):
            model = model.module
        if getattr(model, 'teacher', None) is not None:
            model = _WithoutTeacher(model)
        return super().__call__(model)
