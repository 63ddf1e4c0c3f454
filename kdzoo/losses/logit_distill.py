"""Logit distillation losses: student logits against teacher logits.

Each loss takes ``(student_logits, teacher_logits)``, arguments that a Distiller term binds
by name (to ``student.logits`` and ``teacher.logits``); a user's own loss with more
arguments (e.g. ``labels``) plugs in the same way.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS

SOFT_REDUCTIONS = ('deit', 'batchmean')
#: The epsilon added to the standard deviation by :func:`standardize_logits`.
LOGIT_STD_EPS = 1e-7


def check_number(owner, name, value, minimum, strict):
    """Raise a ValueError naming ``owner``'s argument ``name`` unless ``value`` is a finite
    real number ``> minimum`` (``strict``) or ``>= minimum``."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > minimum if strict else value >= minimum))
    if not ok:
        allowed = f'a finite number {">" if strict else ">="} {minimum:g}'
        raise ValueError(f'{owner}: {name} must be {allowed}, got {value!r}')


def check_logits(owner, student_logits, teacher_logits):
    """Raise a ValueError unless both logits are (N, K) tensors of the same shape, K >= 2."""
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(f'{owner}: student logits {tuple(student_logits.shape)} and teacher '
                         f'logits {tuple(teacher_logits.shape)} must both be (batch, classes) '
                         'of the same shape')
    if student_logits.shape[1] < 2:
        raise ValueError(f'{owner}: the logits have {student_logits.shape[1]} class; at least '
                         '2 are needed')


def check_flag(owner, name, value):
    """Raise a ValueError naming ``owner``'s argument ``name`` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f'{owner}: {name} must be True or False, got {value!r}')


def standardize_logits(logits, eps=LOGIT_STD_EPS):
    """Z-score each sample's logits over the classes (the last dimension), in float32.

    Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024 (the Z-score
    pre-process of their Algorithm 1): ``(z - mean(z)) / (std(z) + eps)``, the mean and the
    standard deviation taken over the K logits of a sample. kdzoo takes the population
    standard deviation (divided by K); the authors' released code divides by K - 1
    (``torch.std``): its softmax at ``tau`` is this one's at ``tau * sqrt(K / (K - 1))``
    (up to eps). ``eps`` (1e-7, the released code's) keeps a constant row finite: it
    becomes all zeros (a uniform softmax). The gradient is the exact one of this formula:
    at a constant row the square root's infinite derivative is not taken (that row's std is
    0 with zero gradient), so the gradient is the projection onto zero-mean vectors divided
    by ``eps``; near-constant rows get gradients of order 1 / (std + eps), the price of
    scale invariance (a student head initialised to zeros gets them at its first step).
    """
    z = logits.float()
    centred = z - z.mean(dim=-1, keepdim=True)
    # Again: the rounded mean leaves a common offset, which would add its square to the
    # variance of logits that differ by little more than their rounding.
    centred = centred - centred.mean(dim=-1, keepdim=True)
    var = centred.square().mean(dim=-1, keepdim=True)
    positive = var > 0
    std = torch.where(positive, torch.where(positive, var, torch.ones_like(var)).sqrt(),
                      torch.zeros_like(var))
    return centred / (std + eps)


@MODELS.register_module()
class SoftDistillLoss(nn.Module):
    """tau^2 * KL(softmax(z_t / tau) || softmax(z_s / tau)) (Hinton et al., 2015).

    ``reduction='deit'`` (default) divides the summed KL by the number of logits
    (batch x classes), as the official DeiT code does; ``'batchmean'`` divides by the batch
    size only, the mathematically usual mean KL per sample. The two differ by a factor of
    the number of classes, so a DeiT alpha is not transferable between them.

    ``logit_std=True`` z-scores the student's and the teacher's logits per sample before the
    temperature (Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024;
    see :func:`standardize_logits`): ``tau`` is then their *base* temperature and the KL is
    still scaled by tau^2. The loss no longer depends on each sample's logit scale and
    shift, only on the logits' relations. The authors' CIFAR-100 settings: base temperature 2
    (3 for some teacher-student pairs) and KD weight 9 with ``reduction='batchmean'``.
    Both logits are computed in float32.
    """

    def __init__(self, tau=1.0, reduction='deit', logit_std=False):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}')
        if reduction not in SOFT_REDUCTIONS:
            raise ValueError(f'reduction must be one of {SOFT_REDUCTIONS}, got {reduction!r}')
        check_flag('SoftDistillLoss', 'logit_std', logit_std)
        self.tau = tau
        self.reduction = reduction
        self.logit_std = logit_std

    def forward(self, student_logits, teacher_logits):
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(f'SoftDistillLoss: student logits {tuple(student_logits.shape)} '
                             f'and teacher logits {tuple(teacher_logits.shape)} must have the '
                             'same shape')
        t = self.tau
        if self.logit_std:
            student_logits = standardize_logits(student_logits)
            teacher_logits = standardize_logits(teacher_logits)
        kl = F.kl_div(F.log_softmax(student_logits.float() / t, dim=-1),
                      F.log_softmax(teacher_logits.float() / t, dim=-1),
                      reduction='sum', log_target=True)
        denom = student_logits.numel() if self.reduction == 'deit' else student_logits.shape[0]
        return kl * (t * t) / denom


@MODELS.register_module()
class HardDistillLoss(nn.Module):
    """Cross-entropy to the teacher's argmax (DeiT's hard distillation).

    The teacher's label is never smoothed, as in DeiT: label smoothing belongs to the base
    criterion and applies to the true labels only.
    """

    def forward(self, student_logits, teacher_logits):
        return F.cross_entropy(student_logits.float(), teacher_logits.argmax(dim=-1))
