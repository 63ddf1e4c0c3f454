"""Multi-teacher logit distillation: the student against several teachers at once.

A term binds ``teacher_logits`` to a list of sources (``teacher_logits=['teachers.a.logits',
'teachers.b.logits']``) and the loss receives a list of T (N, K) tensors, one per teacher,
in that order; a single tensor is one teacher, so both losses are drop-ins for
:class:`~kdzoo.losses.logit_distill.SoftDistillLoss`. All teachers must give logits of the
student's shape (the same classes, in the same order).

:class:`EnsembleKDLoss` distils the ensemble of the teachers, Hinton et al.'s KD against
one target distribution:

    L = tau^2 * KL(p_ens || softmax(z_s / tau)),
    average='probabilities':  p_ens = sum_k w_k softmax(z_k / tau)       (arithmetic mean)
    average='logits':         p_ens = softmax(sum_k w_k z_k / tau)
                                    ∝ prod_k softmax(z_k / tau)^w_k      (geometric mean)

with fixed weights ``w_k`` (equal by default). Hinton, Vinyals and Dean, "Distilling the
Knowledge in a Neural Network", NIPS 2014 Deep Learning Workshop (arXiv:1503.02531),
distil an ensemble's averaged predictions into one model; You, Xu, Xu and Tao, "Learning
from Multiple Teacher Networks", KDD 2017, train the student on the teachers' averaged
softened outputs (their loss on intermediate layers, the relative dissimilarity, is not
part of this loss). The averaging of probabilities is the default.

:class:`CAMKDLoss` is the logit part of Zhang, Chen and Wang, "Confidence-Aware
Multi-Teacher Knowledge Distillation", ICASSP 2022 (arXiv:2201.00007): each teacher's KD
term is weighted, per sample, by how close that teacher's prediction is to the true label
(see the class for its equations and where they come from).

Both compute in float32, also under bf16 autocast, and in log space: the ensemble's
log-probabilities are ``logsumexp_k(log w_k + log_softmax(z_k / tau))``, never the log of
a sum of probabilities that may have underflowed to 0.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS
from .dkd import check_labels
from .logit_distill import SOFT_REDUCTIONS, check_flag, check_number, standardize_logits

#: How :class:`EnsembleKDLoss` combines the teachers (``average``).
AVERAGES = ('probabilities', 'logits')


def teacher_list(owner, student_logits, teacher_logits):
    """The teachers' logits as a list of detached tensors, each checked against the
    student's (N, K) logits, K >= 2. ``teacher_logits``: one tensor or a non-empty list
    (or tuple) of tensors."""
    if isinstance(teacher_logits, torch.Tensor):
        teachers = [teacher_logits]
    elif (isinstance(teacher_logits, (list, tuple)) and teacher_logits
          and all(isinstance(t, torch.Tensor) for t in teacher_logits)):
        teachers = list(teacher_logits)
    else:
        raise ValueError(f'{owner}: teacher_logits must be a tensor (one teacher) or a '
                         'non-empty list of tensors (one per teacher), got '
                         f'{type(teacher_logits).__name__}'
                         + (f' of {[type(t).__name__ for t in teacher_logits]}'
                            if isinstance(teacher_logits, (list, tuple)) else ''))
    if student_logits.dim() != 2:
        raise ValueError(f'{owner}: student logits {tuple(student_logits.shape)} must be '
                         '(batch, classes)')
    if student_logits.shape[1] < 2:
        raise ValueError(f'{owner}: the logits have {student_logits.shape[1]} class; at '
                         'least 2 are needed')
    for index, t in enumerate(teachers):
        if t.shape != student_logits.shape:
            raise ValueError(f'{owner}: teacher {index} logits {tuple(t.shape)} differ from '
                             f'the student logits {tuple(student_logits.shape)}; every '
                             'teacher must give (batch, classes) logits of the student\'s '
                             'shape, over the same classes')
    return [t.detach() for t in teachers]


def normalized_weights(owner, weights):
    """None (equal weights), or ``weights`` (non-negative numbers, not all 0) divided by
    their sum, as a tuple of floats."""
    if weights is None:
        return None
    if not isinstance(weights, (list, tuple)) or not weights:
        raise ValueError(f'{owner}: weights must be None (equal weights) or a non-empty list '
                         f'of non-negative numbers, one per teacher, got {weights!r}')
    for i, w in enumerate(weights):
        check_number(owner, f'weights[{i}]', w, 0, strict=False)
    total = math.fsum(weights)
    if total <= 0:
        raise ValueError(f'{owner}: weights {list(weights)} are all 0; at least one teacher '
                         'needs a positive weight')
    return tuple(float(w) / total for w in weights)


def scaled_log_softmax(logits, tau):
    """``log_softmax(logits / tau)`` of float32 logits, each row shifted by its (detached)
    maximum before the division, so that large logits lose no digits to it."""
    return F.log_softmax((logits - logits.amax(dim=-1, keepdim=True).detach()) / tau, dim=-1)


def ensemble_log_probs(teacher_logits, tau, weights=None, average='probabilities'):
    """The log-probabilities (N, K) of the teachers' ensemble at temperature ``tau``.

    ``teacher_logits``: a list of T float32 (N, K) tensors; ``weights``: T numbers summing
    to 1, None for 1/T each. ``'probabilities'``: ``log sum_k w_k softmax(z_k / tau)``,
    computed as ``logsumexp_k(log w_k + log_softmax(z_k / tau))``: exact also where every
    teacher's probability of a class underflows float32 (a teacher's weight of 0 is a
    ``log w_k`` of -inf, which logsumexp skips). ``'logits'``: ``log_softmax(sum_k w_k z_k /
    tau)``, each teacher's rows shifted by their maximum first (the same softmax).
    """
    count = len(teacher_logits)
    if weights is None:
        weights = [1.0 / count] * count
    w = torch.tensor(weights, dtype=torch.float32, device=teacher_logits[0].device)
    if average == 'probabilities':
        logs = torch.stack([scaled_log_softmax(z, tau) for z in teacher_logits])
        return torch.logsumexp(logs + w.log().view(-1, 1, 1), dim=0)
    # Each teacher's rows shifted by their maximum first: the softmax of the mean changes
    # by nothing (a constant per row), and rows far from 0 lose no digits to the mean.
    shifted = torch.stack([z - z.amax(dim=-1, keepdim=True) for z in teacher_logits])
    return scaled_log_softmax((shifted * w.view(-1, 1, 1)).sum(dim=0), tau)


def kl_rows(log_target, log_input):
    """``sum_c p (log p - log q)`` per row, the KL(p || q) of two log-distributions, with
    ``p = exp(log_target)``; a class of probability 0 (``log p`` = -inf, or ``p`` underflown)
    adds 0, not ``0 * -inf``."""
    p = log_target.exp()
    terms = torch.where(p > 0, p * (log_target - log_input), torch.zeros_like(p))
    return terms.sum(dim=-1)


def check_reduction(owner, reduction):
    if reduction not in SOFT_REDUCTIONS:
        raise ValueError(f'{owner}: reduction must be one of {SOFT_REDUCTIONS}, got '
                         f'{reduction!r}')


def reduce_total(total, reduction, logits):
    """``total`` over the batch size (``'batchmean'``) or over batch x classes
    (``'deit'``)."""
    return total / (logits.numel() if reduction == 'deit' else logits.shape[0])


@MODELS.register_module()
class EnsembleKDLoss(nn.Module):
    """``tau^2 * KL(p_ens || softmax(z_s / tau))``: KD against the teachers' ensemble.

    ``average='probabilities'`` (default): ``p_ens = sum_k w_k softmax(z_k / tau)``, the
    averaged soft targets of Hinton et al. (2015) and You et al. (KDD 2017), the usual
    ensemble. ``average='logits'``: ``p_ens = softmax(sum_k w_k z_k / tau)``, the
    normalised weighted geometric mean of the teachers' distributions; the two agree for
    one teacher and for identical teachers. The mixture is computed in log space
    (:func:`ensemble_log_probs`), so a teacher that is extremely confident next to one that
    is uniform, or teachers whose probabilities of a class all underflow, give the exact
    mixture; a class of probability 0 adds 0 to the KL.

    With one teacher (a tensor or a list of one) this is
    ``SoftDistillLoss(tau, reduction, logit_std)``, except that ``reduction`` defaults to
    ``'batchmean'`` here.

    Args:
        tau: temperature, > 0; the KL is scaled by ``tau^2`` as in Hinton et al.
        reduction: ``'batchmean'`` (default): the KL summed over the classes and averaged
            over the batch; ``'deit'``: divided by batch x classes, as
            :class:`~kdzoo.losses.logit_distill.SoftDistillLoss`'s default.
        average: ``'probabilities'`` or ``'logits'``, see above.
        weights: None (each teacher 1/T) or a fixed non-negative weight per teacher, in the
            order of ``teacher_logits``, normalised to sum to 1 (``[1, 3]`` is
            ``[0.25, 0.75]``); their number is checked against the teachers' at each call.
        logit_std: z-score each sample's logits, the student's and each teacher's, before
            the temperature and before the teachers are averaged (Sun et al., "Logit
            Standardization in Knowledge Distillation", CVPR 2024; see
            :func:`~kdzoo.losses.logit_distill.standardize_logits`). With
            ``average='logits'`` the average of z-scored logits is not z-scored again.

    The teachers' logits are detached; everything is computed in float32, autocast off.
    """

    def __init__(self, tau=1.0, reduction='batchmean', average='probabilities', weights=None,
                 logit_std=False):
        super().__init__()
        owner = 'EnsembleKDLoss'
        check_number(owner, 'tau', tau, 0, strict=True)
        check_reduction(owner, reduction)
        if average not in AVERAGES:
            raise ValueError(f'{owner}: average must be one of {AVERAGES}, got {average!r}')
        check_flag(owner, 'logit_std', logit_std)
        self.tau = float(tau)
        self.reduction = reduction
        self.average = average
        self.weights = normalized_weights(owner, weights)
        self.logit_std = logit_std

    def forward(self, student_logits, teacher_logits):
        teachers = teacher_list('EnsembleKDLoss', student_logits, teacher_logits)
        if self.weights is not None and len(self.weights) != len(teachers):
            raise ValueError(f'EnsembleKDLoss: {len(self.weights)} weights for '
                             f'{len(teachers)} teachers; give one weight per teacher, in the '
                             'order of teacher_logits')
        with torch.autocast(device_type=student_logits.device.type, enabled=False):
            zs = self._prepare(student_logits)
            log_pt = ensemble_log_probs([self._prepare(z) for z in teachers], self.tau,
                                        self.weights, self.average)
            total = kl_rows(log_pt, scaled_log_softmax(zs, self.tau)).sum()
            return reduce_total(total, self.reduction, student_logits) * (self.tau ** 2)

    def _prepare(self, logits):
        return standardize_logits(logits) if self.logit_std else logits.float()


def camkd_weights(teacher_logits, labels):
    """CA-MKD's teacher weights (T, N), without gradient: for sample n,
    ``w_kn = (1 - softmax_k(CE_kn)) / (T - 1)`` with ``CE_kn`` teacher k's cross-entropy
    with label ``y_n`` at temperature 1; all 1 for one teacher. ``1 - softmax_k`` is taken
    as ``sum_{j != k} softmax_j``, a sum of positive terms, not a difference (exact also
    where a teacher's share is close to 1). Each column sums to 1.

    ``teacher_logits``: a list of T float32 (N, K) tensors; ``labels``: (N,) int64.
    """
    index = labels.long().unsqueeze(1)
    ce = torch.stack([-F.log_softmax(z.detach().float(), dim=-1).gather(1, index).squeeze(1)
                      for z in teacher_logits])  # (T, N)
    count = ce.shape[0]
    if count == 1:
        return torch.ones_like(ce)
    share = torch.softmax(ce, dim=0)
    others = ~torch.eye(count, dtype=torch.bool, device=ce.device)
    rest = (share.unsqueeze(0) * others.unsqueeze(-1)).sum(dim=1)  # sum_{j != k} share_j
    return rest / (count - 1)


@MODELS.register_module()
class CAMKDLoss(nn.Module):
    """The logit loss of CA-MKD (Zhang, Chen and Wang, ICASSP 2022): per-sample
    confidence-weighted KD from several teachers.

    For sample n with true class ``y_n`` and T teachers' logits ``z_k``::

        CE_kn = -log softmax(z_k[n])[y_n]                       (temperature 1)
        w_kn  = (1 - exp(CE_kn) / sum_j exp(CE_jn)) / (T - 1)    (T >= 2; w_1n = 1 if T = 1)
        L     = tau^2 / N * sum_n sum_k w_kn * KL(softmax(z_k[n] / tau) || softmax(z_s[n] / tau))

    ``sum_k w_kn = 1``: a teacher whose prediction is closer to the label (lower CE) gets
    the larger weight. Each weight is at most ``1 / (T - 1)``: with three or more teachers
    the weights mostly take weight off the worst teachers (two good teachers next to a
    confidently wrong one get about 1/2 each, whatever their own difference). The weights
    carry no gradient (the teachers' logits are detached).

    Sources and choices:

    - The weights are per sample, as the paper's abstract says ("adaptively assigns
      sample-wise reliability for each teacher prediction") and as the authors' released
      code (github.com/Rorozhl/CA-MKD, ``helper/loops.py``) computes them: the
      cross-entropy with ``reduction='none'``, a softmax over the teachers for each sample.
      The cross-entropy is that of the teachers' raw logits (temperature 1), as there.
    - Normalisation: kdzoo's ``L`` is the weighted sum over the teachers, averaged over the
      batch (``'batchmean'``), so that it is a convex combination of the teachers' KD
      terms on the scale of single-teacher KD, and one teacher gives exactly
      ``SoftDistillLoss(tau, reduction='batchmean')``. The released code divides the same
      sum further by the number of teachers (``/ (bsz * teacher_num)``); to reproduce its
      scale, multiply the term's weight by 1/T. For one teacher the released code does not
      use these weights at all (``(T - 1) = 0``): it switches to plain KD, which kdzoo's
      ``w = 1`` for T = 1 matches.
    - The released code's CIFAR-100 settings: tau 4 (``--kd_T``), KD weight 1 (``-a``) and
      cross-entropy weight 1 (``-r``) next to it. ``tau`` defaults to 1 here.
    - Not included: CA-MKD's feature-level part (the student's intermediate features,
      transformed for each teacher and matched to that teacher's, with their own
      confidence-based per-teacher weights). Only the logit term is this loss.

    Args:
        tau: temperature of the KD terms, > 0 (the weights' cross-entropy is always at 1).
        reduction: ``'batchmean'`` (default; see above) or ``'deit'`` (divided by batch x
            classes instead of the batch size).

    ``forward(student_logits, teacher_logits, labels)``: ``labels`` (N,) integer classes in
    [0, K), bound by name. Computed in float32, autocast off.
    """

    def __init__(self, tau=1.0, reduction='batchmean'):
        super().__init__()
        check_number('CAMKDLoss', 'tau', tau, 0, strict=True)
        check_reduction('CAMKDLoss', reduction)
        self.tau = float(tau)
        self.reduction = reduction

    def forward(self, student_logits, teacher_logits, labels):
        teachers = teacher_list('CAMKDLoss', student_logits, teacher_logits)
        check_labels('CAMKDLoss', labels, *student_logits.shape)
        with torch.autocast(device_type=student_logits.device.type, enabled=False):
            teachers = [z.float() for z in teachers]
            weights = camkd_weights(teachers, labels).detach()
            log_ps = scaled_log_softmax(student_logits.float(), self.tau)
            kl = torch.stack([kl_rows(scaled_log_softmax(z, self.tau), log_ps)
                              for z in teachers])  # (T, N)
            total = (weights * kl).sum()
            return reduce_total(total, self.reduction, student_logits) * (self.tau ** 2)
