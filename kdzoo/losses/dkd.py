"""Decoupled knowledge distillation (DKD).

Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022, eqs. (1)-(7). With
``p = softmax(z / tau)`` and the true class ``y``, the classical KD loss splits into

- TCKD, the KL divergence between the binary distributions ``b = [p_y, p_rest]`` of the
  teacher and the student, ``p_rest = sum_{k != y} p_k = 1 - p_y``;
- NCKD, the KL divergence between the distributions over the non-target classes,
  ``q_k = p_k / p_rest`` (k != y), which is the softmax of the non-target logits alone;

and DKD weighs them independently: ``tau^2 * (alpha * TCKD + beta * NCKD)``, each KL
summed over its outcomes and averaged over the batch. The paper's CIFAR-100 settings are
alpha 1, beta 8, tau 4 (the defaults here); on ImageNet alpha 1, beta 0.5, tau 1.

Its forward needs the true labels, which the Distiller binds by argument name
(``labels``), next to ``student_logits`` and ``teacher_logits``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS
from .logit_distill import check_flag, check_logits, check_number, standardize_logits


def check_labels(owner, labels, batch, num_classes):
    """Raise a ValueError unless ``labels`` holds ``batch`` class indices in [0, num_classes).
    The range check reads the labels' values (a device synchronisation on a GPU)."""
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise ValueError(f'{owner}: labels {tuple(labels.shape)} must be class indices of '
                         f'shape ({batch},), one per sample of the logits')
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f'{owner}: labels must be integer class indices, got {labels.dtype}')
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        value = labels[bad][0].item()
        raise ValueError(f'{owner}: label {value} is out of range; labels must be in '
                         f'[0, {num_classes - 1}] for {num_classes} classes')


def target_and_rest(scaled, labels):
    """``(log [p_y, p_rest], log q)`` of ``p = softmax(scaled)``, computed in log space.

    ``p_rest`` comes from the non-target logits themselves (their logsumexp), not from
    ``1 - p_y``: with ``d = logsumexp_{k != y} a_k - a_y`` (the log-odds of "not the target"),
    ``log p_y = logsigmoid(-d)`` and ``log p_rest = logsigmoid(d)``, exact for any margin.
    ``log q`` is the log-softmax of the non-target logits, the target removed by indexing.
    """
    n, k = scaled.shape
    index = labels.long().unsqueeze(1)
    rest_mask = torch.ones_like(scaled, dtype=torch.bool).scatter_(1, index, False)
    rest = scaled[rest_mask].view(n, k - 1)
    log_odds = torch.logsumexp(rest, dim=1) - scaled.gather(1, index).squeeze(1)
    log_b = torch.stack([F.logsigmoid(-log_odds), F.logsigmoid(log_odds)], dim=1)
    return log_b, F.log_softmax(rest, dim=1)


def kl_from_logs(log_target, log_input):
    """sum over the last dimension of exp(log_target) * (log_target - log_input), the
    KL(target || input) of two log-distributions; finite wherever both are."""
    return (log_target.exp() * (log_target - log_input)).sum(dim=-1)


@MODELS.register_module()
class DKDLoss(nn.Module):
    """``tau^2 * (alpha * TCKD + beta * NCKD)`` (Zhao et al., CVPR 2022), batch-averaged.

    Exact for any margin: everything is in log space and in float32, also under bf16
    autocast (the logits are cast with ``.float()`` and autocast is off inside). The
    non-target mass is ``logsumexp`` of the non-target logits against the target's, never
    ``1 - p_y``: in float32 ``1 - p_y`` loses digits as the target's lead grows and is 0
    from a lead of about 17 * tau (20 at tau 1, 80 at tau 4 are past it), where clamping
    its ``log`` at 1e-12 misstates TCKD and zeroes its gradient. NCKD is the softmax of
    the non-target logits with the target removed by indexing, not pushed down by a large
    negative fill (which loses against logits that are lower still). Each logit row is shifted by its maximum before the
    division by tau (softmax is shift-invariant), so large logits lose no precision.

    The paper ramps the loss up linearly over the first 20 epochs on CIFAR (the released
    code multiplies it by ``min(epoch / 20, 1)``, epochs counted from 1). That is not an
    argument of this loss but kdzoo's stage schedule of the term: with the term named
    ``dkd`` (and ``mix=False``, so that the base criterion keeps its weight, as in the
    paper's ``CE + DKD``)::

        default_hooks = dict(distill_stage=dict(type='DistillStageHook', schedule=dict(
            dkd=[dict(begin=0, end=20, start=0.05, stop=1.05), dict(begin=20)])))

    gives the multiplier ``(e + 1) / 20`` in the 0-based epoch e < 20 and 1 afterwards.

    Args:
        alpha: weight of TCKD, >= 0.
        beta: weight of NCKD, >= 0 (8 on CIFAR-100, 0.5 on ImageNet in the paper).
        tau: temperature, > 0.
        logit_std: z-score each sample's logits first (Sun et al., "Logit Standardization
            in Knowledge Distillation", CVPR 2024; see
            :func:`~kdzoo.losses.logit_distill.standardize_logits`); ``tau`` is then the
            base temperature, which the authors set to 2 for DKD on CIFAR-100 (with their
            distillation weight 9).
    """

    def __init__(self, alpha=1.0, beta=8.0, tau=4.0, logit_std=False):
        super().__init__()
        check_number('DKDLoss', 'alpha', alpha, 0, strict=False)
        check_number('DKDLoss', 'beta', beta, 0, strict=False)
        check_number('DKDLoss', 'tau', tau, 0, strict=True)
        check_flag('DKDLoss', 'logit_std', logit_std)
        self.alpha, self.beta, self.tau = float(alpha), float(beta), float(tau)
        self.logit_std = logit_std

    def forward(self, student_logits, teacher_logits, labels):
        check_logits('DKDLoss', student_logits, teacher_logits)
        check_labels('DKDLoss', labels, *student_logits.shape)
        with torch.autocast(device_type=student_logits.device.type, enabled=False):
            logs = [self._log_parts(z, labels) for z in (student_logits, teacher_logits)]
            (log_b_s, log_q_s), (log_b_t, log_q_t) = logs
            tckd = kl_from_logs(log_b_t, log_b_s).mean()
            nckd = kl_from_logs(log_q_t, log_q_s).mean()
            return (self.alpha * tckd + self.beta * nckd) * (self.tau * self.tau)

    def _log_parts(self, logits, labels):
        z = standardize_logits(logits) if self.logit_std else logits.float()
        scaled = (z - z.amax(dim=1, keepdim=True).detach()) / self.tau
        return target_and_rest(scaled, labels)
