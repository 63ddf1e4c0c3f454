"""Logit distillation losses: student logits against teacher logits.

Each loss takes ``(student_logits, teacher_logits)``, arguments that a Distiller term binds
by name (to ``student.logits`` and ``teacher.logits``); a user's own loss with more
arguments (e.g. ``labels``) plugs in the same way.
"""
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS

SOFT_REDUCTIONS = ('deit', 'batchmean')


@MODELS.register_module()
class SoftDistillLoss(nn.Module):
    """tau^2 * KL(softmax(z_t / tau) || softmax(z_s / tau)) (Hinton et al., 2015).

    ``reduction='deit'`` (default) divides the summed KL by the number of logits
    (batch x classes), as the official DeiT code does; ``'batchmean'`` divides by the batch
    size only, the mathematically usual mean KL per sample. The two differ by a factor of
    the number of classes, so a DeiT alpha is not transferable between them.
    """

    def __init__(self, tau=1.0, reduction='deit'):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}')
        if reduction not in SOFT_REDUCTIONS:
            raise ValueError(f'reduction must be one of {SOFT_REDUCTIONS}, got {reduction!r}')
        self.tau = tau
        self.reduction = reduction

    def forward(self, student_logits, teacher_logits):
        t = self.tau
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
