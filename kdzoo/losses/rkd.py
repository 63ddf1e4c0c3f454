"""Relational knowledge distillation (RKD).

Park et al., "Relational Knowledge Distillation", CVPR 2019, eqs. (3)-(8). The student
learns the relations among the samples of a batch, not their features: with ``t_i``, ``s_i``
the teacher's and the student's embeddings of sample i and ``l_delta`` the Huber loss
(delta = 1: ``(x - y)^2 / 2`` where ``|x - y| <= 1``, ``|x - y| - 1/2`` elsewhere),

- distance-wise potential: ``psi_D(t_i, t_j) = ||t_i - t_j||_2 / mu`` with ``mu`` the mean
  distance over the distinct pairs of the batch (eq. 4), and
  ``L_RKD-D = sum_{i != j} l_delta(psi_D(t_i, t_j), psi_D(s_i, s_j))``;
- angle-wise potential: ``psi_A(t_i, t_j, t_k) = <e_ij, e_kj>`` with
  ``e_ij = (t_i - t_j) / ||t_i - t_j||_2``, the cosine of the angle at t_j (eq. 7), and
  ``L_RKD-A`` the Huber loss summed over the triplets of distinct samples;

``L = w_d * L_RKD-D + w_a * L_RKD-A``, w_d = 25 and w_a = 50 in the paper (the defaults;
also mdistiller's CIFAR-100 setting, which weighs the term 1).

The choices the paper leaves open, and kdzoo's:

- The embedding: the paper uses the final embedding layer. kdzoo flattens whatever layer
  the term binds, per sample (a (B, C, H, W) map becomes (B, C*H*W), tokens (B, N*C)):
  bind the layer whose output is the embedding (e.g. a pooled penultimate layer). The
  pairwise differences need B^2 * D floats for the angles (D the flattened width), as in
  the reference implementations.
- Sums: kdzoo averages, over the B (B - 1) ordered pairs i != j and the B (B - 1) (B - 2)
  ordered triplets of distinct samples (the paper's sets of distinct tuples). Common
  reference code averages over all B^2 and B^3 entries instead, zero terms for repeated
  indices included, a factor (B - 1) / B and about (B - 1)(B - 2) / B^2 smaller. A batch
  of fewer than 2 (distances) or 3 (angles) samples has no such tuples: that part is 0.
- Numerics: the distances come from the differences ``t_i - t_j`` themselves
  (``torch.cdist`` without its matrix-product shortcut), not from
  ``||t_i||^2 + ||t_j||^2 - 2 <t_i, t_j>``, which cancels catastrophically for close samples
  (e.g. near-constant features) and needs a clamp before its square root. The diagonal is
  exactly 0 and a zero distance gets a zero gradient (no square root's infinite derivative
  is taken). Each network's features are first multiplied by the power of two that brings
  their largest magnitude over the batch into [1/2, 1) (detached; exact, so the
  differences of near-equal samples lose nothing): both potentials are invariant to that
  scale, so nothing changes but the range (no overflow of squares for large activations).
- ``eps`` (1e-12, the value of mdistiller's clamp of squared distances, in another role
  here) acts on the rescaled features, i.e. relative to the largest activation (within a
  factor 2): ``mu`` is clamped to at least ``eps``, so when every distance is 0 (all
  samples equal) all normalised distances are 0 instead of 0/0, and that network's
  distance potential carries no gradient. A difference shorter than ``eps`` has no
  direction: its unit vector is taken as 0, so the cosines of its angles are 0 (for
  exactly equal samples and in the all-equal batch). Near-constant features (equal up to
  tiny noise) are resolved to float32's precision: the potentials are scale- and
  translation-free, only the gradients grow as 1 / spread.
- Precision: float32, also under bf16 autocast. The teacher's features are detached.

Args:
    distance_weight: w_d, >= 0.
    angle_weight: w_a, >= 0 (0 skips the angles and their B^2 * D memory).
    eps: > 0, see above.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS
from .fitnets import feature_pairs, power_of_two_scaled
from .logit_distill import check_number


def scaled_embedding(features):
    """Flattened float32 features, scaled exactly by a power of two (detached) to a largest
    magnitude in [1/2, 1)."""
    return power_of_two_scaled(features.float().flatten(1))


def distance_potential(x, eps):
    """(B, B) pairwise distances divided by their mean over i != j (at least eps)."""
    b = x.shape[0]
    d = torch.cdist(x.unsqueeze(0), x.unsqueeze(0),
                    compute_mode='donot_use_mm_for_euclid_dist').squeeze(0)
    off = ~torch.eye(b, dtype=torch.bool, device=x.device)
    mean = d[off].mean()
    return d / mean.clamp_min(eps), off


def angle_potential(x, eps):
    """(B, B, B) cosines ``cos[j, i, k] = <e_ji, e_jk>``, ``e_ji`` the unit vector of
    ``x_i - x_j`` (0 where that difference is shorter than eps)."""
    diff = x.unsqueeze(0) - x.unsqueeze(1)  # diff[j, i] = x_i - x_j
    norm = torch.linalg.vector_norm(diff, dim=2, keepdim=True)
    ok = norm > eps
    unit = torch.where(ok, diff / torch.where(ok, norm, torch.ones_like(norm)),
                       torch.zeros_like(diff))
    return torch.bmm(unit, unit.transpose(1, 2))


def distinct_triplets(b, device):
    idx = torch.arange(b, device=device)
    j, i, k = idx.view(b, 1, 1), idx.view(1, b, 1), idx.view(1, 1, b)
    return (i != j) & (k != j) & (i != k)


@MODELS.register_module()
class RKDLoss(nn.Module):
    """``w_d * L_RKD-D + w_a * L_RKD-A`` (Park et al., CVPR 2019), Huber losses averaged
    over distinct pairs and triplets; see the module's docstring."""

    def __init__(self, distance_weight=25.0, angle_weight=50.0, eps=1e-12):
        super().__init__()
        check_number('RKDLoss', 'distance_weight', distance_weight, 0, strict=False)
        check_number('RKDLoss', 'angle_weight', angle_weight, 0, strict=False)
        check_number('RKDLoss', 'eps', eps, 0, strict=True)
        self.distance_weight = float(distance_weight)
        self.angle_weight = float(angle_weight)
        self.eps = float(eps)

    def forward(self, student_features, teacher_features):
        (s, t), = feature_pairs('RKDLoss', student_features, teacher_features)
        with torch.autocast(device_type=s.device.type, enabled=False):
            xs, xt = scaled_embedding(s), scaled_embedding(t.detach())
            b = xs.shape[0]
            total = xs.sum() * 0.0  # a batch without pairs: 0, still part of the graph
            if b >= 2 and self.distance_weight > 0:
                ds, off = distance_potential(xs, self.eps)
                dt, _ = distance_potential(xt, self.eps)
                huber = F.smooth_l1_loss(ds[off], dt[off], beta=1.0)
                total = total + self.distance_weight * huber
            if b >= 3 and self.angle_weight > 0:
                keep = distinct_triplets(b, xs.device)
                huber = F.smooth_l1_loss(angle_potential(xs, self.eps)[keep],
                                         angle_potential(xt, self.eps)[keep], beta=1.0)
                total = total + self.angle_weight * huber
            return total
