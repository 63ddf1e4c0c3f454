"""Probabilistic knowledge transfer (PKT).

Passalis and Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer",
ECCV 2018. The student matches the teacher's probability distribution of the samples'
similarities rather than the features themselves. With the cosine-similarity kernel (the
paper's choice for its experiments)

    K(a, b) = (a^T b / (||a||_2 ||b||_2) + 1) / 2     in [0, 1],

each network's features of a batch give conditional probabilities normalised over each
row, ``p_{j|i} = K(x_i, x_j) / sum_k K(x_i, x_k)``, and the loss is the divergence of the
student's from the teacher's,

    L = sum_{i, j} p^t_{j|i} log(p^t_{j|i} / p^s_{j|i}).

What kdzoo computes, following the authors' released code (and RepDistiller's and
mdistiller's ports, whose CIFAR-100 weight is 30000, mdistiller's
``CFG.PKT.LOSS.FEAT_WEIGHT``, for this form):

- Features are flattened per sample ((B, C, H, W) maps and (B, N, C) tokens alike) and
  divided by ``||x||_2 + eps``; a row keeps the sample's similarity with itself
  (K = 1 for non-zero features).
- ``L = mean_{i, j} p^t_{j|i} log((p^t_{j|i} + eps) / (p^s_{j|i} + eps))``: the mean over
  the B^2 entries, i.e. the row-wise KL divergences averaged over the rows and divided by B
  once more.
- ``eps`` (1e-7, the authors' value) has two roles: in the normalisation it makes an
  all-zero feature vector a zero unit vector (kernel 1/2 with every sample, no 0/0), and in
  the ratio it keeps the logarithm finite where a probability is 0 (a pair at cosine -1).
  Its effect elsewhere is of order eps relative.
- Numerics: ``(cos + 1) / 2`` is computed from the cosine, so near cosine -1 (opposite
  features; not reachable with non-negative, e.g. post-ReLU, features) the kernel has an
  absolute error of float32's resolution. Near-constant features (cosines all close to 1)
  give a loss close to 0: differences of cosines below float32's resolution (about 1e-7)
  are not seen.
- Precision: float32, also under bf16 autocast. The teacher's features are detached.

Args:
    eps: > 0, see above.
"""
import torch
import torch.nn as nn

from kdzoo.registry import MODELS
from .fitnets import feature_pairs
from .logit_distill import check_number

#: The authors' epsilon (normalisation and log ratio).
PKT_EPS = 1e-7


def conditional_probabilities(features, eps):
    """(B, B) row-normalised cosine kernel ``p[i, j] = K(x_i, x_j) / sum_k K(x_i, x_k)``."""
    x = features.float().flatten(1)
    unit = x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + eps)
    kernel = (unit @ unit.t() + 1) / 2
    return kernel / kernel.sum(dim=1, keepdim=True)


@MODELS.register_module()
class PKTLoss(nn.Module):
    """``mean_{i,j} p_t log((p_t + eps) / (p_s + eps))`` of the cosine-kernel conditional
    probabilities (Passalis and Tefas, ECCV 2018); see the module's docstring."""

    def __init__(self, eps=PKT_EPS):
        super().__init__()
        check_number('PKTLoss', 'eps', eps, 0, strict=True)
        self.eps = float(eps)

    def forward(self, student_features, teacher_features):
        (s, t), = feature_pairs('PKTLoss', student_features, teacher_features)
        with torch.autocast(device_type=s.device.type, enabled=False):
            p_s = conditional_probabilities(s, self.eps)
            p_t = conditional_probabilities(t.detach(), self.eps)
            return (p_t * torch.log((p_t + self.eps) / (p_s + self.eps))).mean()
