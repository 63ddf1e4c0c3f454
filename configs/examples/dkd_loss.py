"""Decoupled knowledge distillation (DKD) as a user's own loss, outside the kdzoo package.

Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022, eqs. (1)-(7): the classical KD
loss splits into a target-class term (TCKD: KL between the binary distributions
[p_target, 1 - p_target] of teacher and student) and a non-target-class term (NCKD: KL
between the distributions over the other classes, renormalised); DKD weighs them
independently, alpha * TCKD + beta * NCKD, both at temperature tau and scaled by tau^2.

Its forward needs the true labels, which the Distiller binds by argument name
(``labels``), next to ``student_logits`` and ``teacher_logits``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS


@MODELS.register_module()
class DKDLoss(nn.Module):
    """alpha * TCKD + beta * NCKD, each a KL summed over classes and averaged over the
    batch (the paper's defaults: alpha 1, beta 8, tau 4)."""

    def __init__(self, alpha=1.0, beta=8.0, tau=4.0):
        super().__init__()
        if tau <= 0 or alpha < 0 or beta < 0:
            raise ValueError(f'DKDLoss needs tau > 0 and alpha, beta >= 0; got tau={tau}, '
                             f'alpha={alpha}, beta={beta}')
        self.alpha, self.beta, self.tau = alpha, beta, tau

    def forward(self, student_logits, teacher_logits, labels):
        t = self.tau
        target = F.one_hot(labels, student_logits.shape[-1]).bool()
        p_s = F.softmax(student_logits.float() / t, dim=-1)
        p_t = F.softmax(teacher_logits.float() / t, dim=-1)
        # Binary distributions [target, all other classes].
        b_s = torch.stack([p_s[target], 1 - p_s[target]], dim=-1).clamp_min(1e-12)
        b_t = torch.stack([p_t[target], 1 - p_t[target]], dim=-1).clamp_min(1e-12)
        tckd = (b_t * (b_t.log() - b_s.log())).sum(-1).mean()
        # Distributions over the non-target classes: the target logit masked out.
        masked = -1e4
        log_q_s = F.log_softmax(student_logits.float().masked_fill(target, masked) / t, dim=-1)
        log_q_t = F.log_softmax(teacher_logits.float().masked_fill(target, masked) / t, dim=-1)
        nckd = (log_q_t.exp() * (log_q_t - log_q_s)).sum(-1).mean()
        return (self.alpha * tckd + self.beta * nckd) * t * t
