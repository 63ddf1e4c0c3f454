"""Similarity-preserving distillation (SP).

Tung and Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019, eqs. (1)-(4):
inputs that the teacher finds similar should be similar to the student too. With ``A`` the
(b, chw) matrix of a layer's activations, one flattened row per image of a batch of b,

    G~ = A A^T,    G[i] = G~[i] / ||G~[i]||_2    (each row L2-normalised),
    L_SP = 1/b^2 * || G_T - G_S ||_F^2,

summed over the chosen pairs of layers (eq. 4); the paper's CIFAR-10 weight is
gamma = 3000 (also mdistiller's ``CFG.SP.LOSS.FEAT_WEIGHT`` on CIFAR-100). G is b x b
whatever the layers' shapes, so a transformer's tokens (flattened with their prefix tokens)
and a CNN's map compare without a connector.

The choices the paper leaves open, and kdzoo's:

- Zero rows: a sample whose activations are all zero has a zero row of G~, which stays
  zero, with a zero gradient. The example loss kdzoo shipped before
  (``configs/examples/sp_loss.py``), whose values this one reproduces, normalised with
  ``F.normalize`` (eps 1e-12): the same values, but a gradient of 1e12 times the other
  samples' activations on a zero sample, which would wreck a training step. Rows are
  otherwise divided by their exact norm (the normalisation is scale-free, so a row that
  is small but not zero is normalised like any other).
- Scale: each network's activations are multiplied by the power of two that brings their
  largest magnitude over the batch into [1/2, 1) (detached; an exact rescaling) before the
  product. G's normalised rows are invariant to one common scale of A, so the value and
  gradient are those of the unscaled activations (the values equal the former example's
  bit for bit on ordinary features), while large activations cannot overflow G~'s
  squares nor small ones underflow them.
- Several layers: arguments bound to lists of layers (of equal length) give the sum of
  the losses of the pairs, as eq. (4).
- Precision: float32, also under bf16 autocast. The teacher's features are detached.
"""
import torch
import torch.nn as nn

from kdzoo.registry import MODELS
from .fitnets import feature_pairs, power_of_two_scaled


def batch_similarity(features):
    """(b, b) row-normalised similarity ``normalize(A A^T)`` of flattened ``features``,
    float32; A is scaled by a power of two first (no effect on the result)."""
    a = power_of_two_scaled(features.float().flatten(1))
    g = a @ a.t()
    norm = torch.linalg.vector_norm(g, dim=1, keepdim=True)
    positive = norm > 0
    return torch.where(positive, g / torch.where(positive, norm, torch.ones_like(norm)),
                       torch.zeros_like(g))


@MODELS.register_module()
class SPLoss(nn.Module):
    """``||G_s - G_t||_F^2 / b^2`` between the row-normalised batch similarity matrices
    (Tung and Mori, ICCV 2019), summed over layer pairs when given lists."""

    owner = 'SPLoss'

    def forward(self, student_features, teacher_features):
        pairs = feature_pairs(self.owner, student_features, teacher_features,
                              allow_lists=True)
        with torch.autocast(device_type=pairs[0][0].device.type, enabled=False):
            total = 0
            for s, t in pairs:
                b = s.shape[0]
                diff = batch_similarity(s) - batch_similarity(t.detach())
                total = total + diff.square().sum() / (b * b)
            return total


@MODELS.register_module()
class SimilarityPreservingLoss(SPLoss):
    """:class:`SPLoss` under the name of the example loss kdzoo shipped before (the same
    values), so that configs written for it keep working."""

    owner = 'SimilarityPreservingLoss'
