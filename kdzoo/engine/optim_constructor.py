"""The optimizer of a distillation run: the student and the terms' connectors, never the
teacher."""
import logging
from collections import Counter

import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

from kdzoo.models.teachers import TEACHER_CHILDREN
from kdzoo.registry import OPTIM_WRAPPER_CONSTRUCTORS

# The lines mmengine's constructor logs once per parameter when paramwise_cfg is set.
_PER_PARAMETER = ('paramwise_options -- ', ' is skipped since its requires_grad=',
                  ' is duplicate. It is skipped since bypass_duplicate=')


class _WithoutTeacher(nn.Module):
    """The children of a model except its teacher, under their own names (so that
    ``paramwise_cfg`` keys such as '.pos_embed' match as on the model)."""

    def __init__(self, model):
        super().__init__()
        for name, child in model.named_children():
            if name not in TEACHER_CHILDREN:
                self.add_module(name, child)
        for name, param in model.named_parameters(recurse=False):
            self.register_parameter(name, param)


class _Held(logging.Filter):
    """Keeps the per-parameter lines from being logged and collects them."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def filter(self, record):
        message = record.getMessage()
        if any(marker in message for marker in _PER_PARAMETER):
            self.messages.append(message)
            return False
        return True


def _number(value):
    return f'{value:g}' if isinstance(value, float) else repr(value)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillerOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor on the model without its frozen teacher, logging one
    summary line instead of a line per parameter.

    The teacher is never optimised, so it has no place in the optimizer's parameter
    groups; leaving it out also keeps mmengine from logging one "is skipped since its
    requires_grad=False" warning per teacher parameter (65 for a ResNet-20, 251 for
    RegNetY-16GF) when ``paramwise_cfg`` is set. With ``paramwise_cfg`` mmengine also logs
    every option of every parameter it changes ("paramwise_options -- student.pos_embed:
    weight_decay=0.0", 43 lines for a DeiT-micro); those lines, and the skip warnings of
    any other frozen parameter, go to DEBUG level (``log_level='DEBUG'`` shows them) and one
    INFO line says how many parameters got which learning rate and weight decay.
    """

    def __call__(self, model):
        if hasattr(model, 'module'):
            model = model.module
        teachers = [getattr(model, c, None) for c in TEACHER_CHILDREN]
        teachers = [t for t in teachers if t is not None]
        self._teacher_tensors = sum(1 for t in teachers for _ in t.parameters())
        if teachers:
            model = _WithoutTeacher(model)
        logger = MMLogger.get_current_instance()
        held = _Held()
        logger.addFilter(held)
        try:
            return super().__call__(model)
        finally:
            logger.removeFilter(held)
            for message in held.messages:
                logger.debug(message)

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        super().add_params(params, module, prefix=prefix, is_dcn_module=is_dcn_module)
        if not prefix:  # the top-level call, after every submodule's
            frozen = sum(1 for p in module.parameters() if not p.requires_grad)
            MMLogger.get_current_instance().info(self.summary(params, frozen))

    def summary(self, params, frozen=0):
        """One line: how many parameter tensors (and values) train with which learning
        rate and weight decay under ``paramwise_cfg``, and how many are left out."""
        tensors, values = Counter(), Counter()
        for group in params:
            options = dict(lr=group.get('lr', self.base_lr))
            if self.base_wd is not None or 'weight_decay' in group:
                options['weight_decay'] = group.get('weight_decay', self.base_wd)
            skip = ('params', 'lr', 'weight_decay', 'lr_mult', 'decay_mult')
            options.update(sorted((k, v) for k, v in group.items() if k not in skip))
            key = ', '.join(f'{k}={_number(v)}' for k, v in options.items())
            tensors[key] += len(group['params'])
            values[key] += sum(p.numel() for p in group['params'])
        parts = [f'{tensors[key]} tensors ({values[key]:,} values) with {key}'
                 for key in sorted(values, key=lambda key: -values[key])]
        line = 'paramwise_cfg: ' + ('; '.join(parts) or 'no trainable parameters')
        left_out = []
        if getattr(self, '_teacher_tensors', 0):
            left_out.append(f"the teacher's {self._teacher_tensors} tensors")
        if frozen:
            left_out.append(f"{frozen} frozen tensor{'s' if frozen > 1 else ''}")
        if left_out:
            line += f"; not optimised: {' and '.join(left_out)}"
        return line + " (per-parameter options: log_level='DEBUG')"
