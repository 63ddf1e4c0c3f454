"""Activation-based attention transfer (AT).

Zagoruyko and Komodakis, "Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer", ICLR 2017, section 3.1. A layer's
activations ``A`` (C x H x W) give the spatial attention map

    Q = F_sum^p(A) = sum_c |A_c|^p        (p = 2 is the paper's choice),

flattened to a vector of H*W entries, and eq. (2) adds, for the chosen pairs j of student
and teacher layers,

    beta / 2 * sum_j || Q_S^j / ||Q_S^j||_2 - Q_T^j / ||Q_T^j||_2 ||_p.

What kdzoo computes, and the choices the paper leaves open:

- The distance: kdzoo takes the form of the authors' released code and of the common
  benchmark suites, the *squared* difference of the normalised maps averaged over the
  batch and the map's positions::

      mean_{b, k} (Q_S[b, k] / ||Q_S[b]|| - Q_T[b, k] / ||Q_T[b]||)^2

  (eq. 2 writes the p-norm of the difference, not its square). The paper's text sets beta
  to 10^3 divided by the number of elements of the attention map and the batch size, a
  fixed factor on this mean: 1000, or 500 with eq. 2's 1/2 (a version of the authors'
  CIFAR code, cifar.py, multiplies the groups' summed means by beta with no 1/2). The
  loss itself has no factor; the term's weight carries it, set in the config: the
  benchmark suites use 1000 (mdistiller's ``CFG.AT.LOSS.FEAT_WEIGHT`` on CIFAR-100).
- Several layers: arguments bound to lists of layers (of equal length, e.g. the three
  groups of a CIFAR ResNet) give the sum of the pairs' losses, as eq. (2).
- Different spatial sizes: the student's attention map (the 2-D map Q, before its
  normalisation) is resized to the teacher's size by bilinear interpolation
  (``align_corners=False``, no antialiasing) before both are flattened and normalised.
  The paper pairs layers of equal size.
- Transformer tokens: a (B, N, C) input is a ViT block's tokens; its first
  ``num_prefix_tokens`` (class, distillation tokens) are dropped and the rest, a square
  grid, is the map (Q sums |token|^p over the C channels). A (B, C, H, W) input is a CNN
  map.
- Normalisation: ``F.normalize`` (eps 1e-12), so an all-zero map (e.g. all activations
  below a ReLU's threshold) stays zero instead of dividing by 0. Each sample's activations
  are multiplied by the power of two that brings their largest magnitude into [1/2, 1)
  (detached; exact) before the power: Q / ||Q|| is invariant to that scale, so the value
  and the gradient are unchanged, while ``|A|^p`` cannot overflow for large activations
  nor underflow (or meet the eps) for small ones.
- Precision: float32, also under bf16 autocast. The teacher's features are detached.

Args:
    p: the exponent of ``F_sum^p``, >= 1 (the paper: 2; below 1 the gradient of ``|A|^p``
        is infinite at 0).
    num_prefix_tokens: tokens in front of the patch grid of a (B, N, C) input, one count
        for both networks or a (student, teacher) pair; ignored for (B, C, H, W) maps.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS
from .fitnets import feature_pairs, power_of_two_scaled
from .logit_distill import check_number


def check_prefix(value):
    """``(student, teacher)`` prefix-token counts from an int or a pair of ints >= 0."""
    pair = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    ok = len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                for v in pair)
    if not ok:
        raise ValueError('ATLoss: num_prefix_tokens must be an int >= 0 or a (student, '
                         f'teacher) pair of them, got {value!r}')
    return pair


def spatial_map(features, num_prefix_tokens, who):
    """(B, H, W, C) float32 view of a (B, C, H, W) map or (B, prefix + H*W, C) tokens."""
    x = features.float()
    if x.dim() == 4:
        return x.permute(0, 2, 3, 1)
    if x.dim() != 3:
        raise ValueError(f'ATLoss: {who} features {tuple(features.shape)} must be a CNN map '
                         '(B, C, H, W) or transformer tokens (B, N, C)')
    patches = x.shape[1] - num_prefix_tokens
    side = math.isqrt(max(patches, 0))
    if patches <= 0 or side * side != patches:
        raise ValueError(f'ATLoss: {who} tokens {tuple(features.shape)}: {x.shape[1]} tokens '
                         f'minus {num_prefix_tokens} prefix tokens do not form a square grid; '
                         'check num_prefix_tokens')
    return x[:, num_prefix_tokens:].reshape(x.shape[0], side, side, x.shape[2])


def attention_map(features, p, num_prefix_tokens, who):
    """Q = sum_c |A_c|^p as a (B, H, W) float32 map, each sample's A scaled by a power of
    two first (Q / ||Q|| is unchanged by it)."""
    x = power_of_two_scaled(spatial_map(features, num_prefix_tokens, who), dims=(1, 2, 3))
    power = x.square() if p == 2 else x.abs().pow(p)
    return power.sum(dim=3)


@MODELS.register_module()
class ATLoss(nn.Module):
    """``mean_{b,k} (Q_s/||Q_s|| - Q_t/||Q_t||)^2`` of the attention maps ``Q = sum_c
    |A_c|^p`` (Zagoruyko and Komodakis, ICLR 2017), summed over layer pairs; see the
    module's docstring."""

    def __init__(self, p=2.0, num_prefix_tokens=0):
        super().__init__()
        check_number('ATLoss', 'p', p, 1, strict=False)
        self.p = float(p)
        self.num_prefix_tokens = check_prefix(num_prefix_tokens)

    def forward(self, student_features, teacher_features):
        pairs = feature_pairs('ATLoss', student_features, teacher_features, allow_lists=True)
        prefix_s, prefix_t = self.num_prefix_tokens
        with torch.autocast(device_type=pairs[0][0].device.type, enabled=False):
            total = 0
            for s, t in pairs:
                q_s = attention_map(s, self.p, prefix_s, 'student')
                q_t = attention_map(t.detach(), self.p, prefix_t, 'teacher')
                if q_s.shape[1:] != q_t.shape[1:]:
                    q_s = F.interpolate(q_s.unsqueeze(1), size=tuple(q_t.shape[1:]),
                                        mode='bilinear', align_corners=False).squeeze(1)
                diff = F.normalize(q_s.flatten(1), dim=1) - F.normalize(q_t.flatten(1), dim=1)
                total = total + diff.square().mean()
            return total
