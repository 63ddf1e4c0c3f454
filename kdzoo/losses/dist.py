"""DIST: distillation by inter-class and intra-class relations.

Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022, eqs. (4)-(8).
With ``Y = softmax(Z / tau)`` row-wise for the student's and the teacher's (N, K) logits and
the Pearson correlation ``rho``,

- the inter-class relation is ``1 - mean_i rho(Y_s[i, :], Y_t[i, :])`` (each sample's
  class distribution),
- the intra-class relation is ``1 - mean_k rho(Y_s[:, k], Y_t[:, k])`` (each class's
  probabilities over the batch),

and ``L = tau^2 * (beta * inter + gamma * intra)``. The paper takes beta = gamma = 1 (the
defaults), tau = 1 on ImageNet and tau = 4 on CIFAR-100; tau defaults to 1.
"""
import torch
import torch.nn as nn

from kdzoo.registry import MODELS
from .logit_distill import check_flag, check_logits, check_number, standardize_logits

#: The default epsilon of the Pearson correlation's denominator (the authors' value).
PEARSON_EPS = 1e-8


def centred_probabilities(logits, tau):
    """``(Y - row means, Y - column means)`` of ``Y = softmax(logits / tau)``, float32.

    Centring probabilities that are nearly equal cancels their leading digits, so neither
    is computed as ``Y - mean(Y)``. Rows: with ``a = (z - max z) / tau``,
    ``Y - 1/K = (expm1(a) - mean(expm1(a))) / (K * mean(exp(a)))``. Columns: with
    ``d = log(K * Y) = a - log(mean(exp(a)))`` (the log taken as ``log1p(mean(expm1(a)))``
    where the mean is above 1/2) and ``m`` the column's largest ``d``,
    ``Y - mean(Y) = exp(m) / K * (expm1(d - m) - mean(expm1(d - m)))``. Both stay exact to
    float32's resolution from well-separated logits down to near-constant ones.
    """
    num_classes = logits.shape[1]
    a = (logits - logits.amax(dim=1, keepdim=True).detach()) / tau
    em1 = torch.expm1(a)
    mean_em1 = em1.mean(dim=1, keepdim=True)
    mean_exp = a.exp().mean(dim=1, keepdim=True)  # in [1/K, 1]
    rows = (em1 - mean_em1) / (num_classes * mean_exp)
    log_mean_exp = torch.where(mean_exp > 0.5, torch.log1p(mean_em1), mean_exp.log())
    d = a - log_mean_exp
    top = d.amax(dim=0, keepdim=True).detach()
    y = torch.expm1(d - top)
    cols = (y - y.mean(dim=0, keepdim=True)) * (top.exp() / num_classes)
    return rows, cols


def pearson_of_centred(a, b, dim, eps):
    """``<a, b> / (|a| |b| + eps)`` along ``dim`` for centred ``a``, ``b``: Pearson's
    correlation, 0 where a vector is constant."""
    norms = torch.linalg.vector_norm(a, dim=dim) * torch.linalg.vector_norm(b, dim=dim)
    return (a * b).sum(dim=dim) / (norms + eps)


@MODELS.register_module()
class DISTLoss(nn.Module):
    """``tau^2 * (beta * inter + gamma * intra)`` (Huang et al., NeurIPS 2022).

    The choices the paper leaves open:

    - Constant vectors: ``rho(u, v) = <u - mean u, v - mean v> / (|u - mean u| |v - mean
      v| + eps)``, eps = 1e-8 on the probabilities (as in the authors' code). A constant
      vector (all classes equally likely) has ``rho = 0``, so its relation term is 1; a
      near-constant one has ``rho`` shrunk smoothly towards 0 once the product of the
      centred norms nears eps. The loss and its gradient are finite for any finite input,
      but Pearson is scale-invariant, so its gradient grows as a vector's spread shrinks
      until eps takes over, at about (the other vector's centred norm) / eps: a student
      whose logits are all equal (a head initialised to zeros) gets a very large first
      gradient. With a batch of one the intra term is the constant ``gamma * tau^2``
      (zero gradient).
    - The intra term correlates each class over the batch the loss is given (per process
      under DDP, as in the authors' code); every class counts in its mean, also classes
      that no sample predicts (their rho is near 0).
    - Precision: computed in float32, also under bf16 autocast (the logits are cast with
      ``.float()`` and autocast is off inside), with centring that keeps near-constant
      vectors exact (:func:`centred_probabilities`).
    - The loss is symmetric in the student and the teacher (Pearson is); the gradient
      reaches whichever logits require it.

    ``logit_std=True`` z-scores each sample's logits first (Sun et al., "Logit
    Standardization in Knowledge Distillation", CVPR 2024; see
    :func:`~kdzoo.losses.logit_distill.standardize_logits`). It is not a no-op here: Pearson
    is invariant to each probability vector's scale and shift, not to the logits' scale,
    which changes the softmax's shape, so standardising acts as a per-sample temperature
    ``tau * std(z)``. Sun et al. evaluate it with KD, CTKD, DKD and MLKD, not with DIST; it
    is off by default. With two classes it maps every row to +-(1, -1) (up to eps), so
    the intra term is left with eps-sized differences: not meaningful there.

    Args:
        beta: weight of the inter-class relation, >= 0.
        gamma: weight of the intra-class relation, >= 0.
        tau: temperature, > 0 (1 on ImageNet, 4 on CIFAR-100 in the paper).
        logit_std: z-score the logits first (``tau`` is then a base temperature).
        eps: the Pearson denominator's epsilon, > 0.
    """

    def __init__(self, beta=1.0, gamma=1.0, tau=1.0, logit_std=False, eps=PEARSON_EPS):
        super().__init__()
        check_number('DISTLoss', 'beta', beta, 0, strict=False)
        check_number('DISTLoss', 'gamma', gamma, 0, strict=False)
        check_number('DISTLoss', 'tau', tau, 0, strict=True)
        check_number('DISTLoss', 'eps', eps, 0, strict=True)
        check_flag('DISTLoss', 'logit_std', logit_std)
        self.beta, self.gamma, self.tau = float(beta), float(gamma), float(tau)
        self.logit_std = logit_std
        self.eps = float(eps)

    def forward(self, student_logits, teacher_logits):
        check_logits('DISTLoss', student_logits, teacher_logits)
        with torch.autocast(device_type=student_logits.device.type, enabled=False):
            zs, zt = (standardize_logits(z) if self.logit_std else z.float()
                      for z in (student_logits, teacher_logits))
            rows_s, cols_s = centred_probabilities(zs, self.tau)
            rows_t, cols_t = centred_probabilities(zt, self.tau)
            inter = 1 - pearson_of_centred(rows_s, rows_t, 1, self.eps).mean()
            intra = 1 - pearson_of_centred(cols_s, cols_t, 0, self.eps).mean()
            return (self.beta * inter + self.gamma * intra) * (self.tau * self.tau)
