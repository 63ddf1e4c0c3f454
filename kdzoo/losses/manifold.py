"""Fine-grained manifold distillation: patch relation matrices of the student and teacher.

Zhiwei Hao, Jianyuan Guo, Ding Jia, Kai Han, Yehui Tang, Chao Zhang, Han Hu and Yunhe Wang,
"Learning Efficient Vision Transformers via Fine-Grained Manifold Distillation", NeurIPS
2022 (arXiv:2107.01378). With a layer's patch tokens ``F`` (B, N, C) L2-normalised along
the channels and the relation matrix ``M(X) = X X^T`` of a set of tokens X, the manifold
loss is decoupled into three terms:

- intra-image: for each image b, the N x N relations of its patches,
  ``L_intra = mean_{b,i,j} (M(F_s[b]) - M(F_t[b]))_{ij}^2``;
- inter-image: for each patch position n, the B x B relations across the images,
  ``L_inter = mean_{n,a,b} (M(F_s[:, n]) - M(F_t[:, n]))_{ab}^2``;
- random-sampled: K patches sampled from all B*N patches of the batch (the same ones for
  the student and the teacher), ``L_random = mean_{k,l} (M(F_s[S]) - M(F_t[S]))_{kl}^2``;

and ``L = alpha * L_intra + beta * L_inter + gamma * L_random``. Each term is the squared
Frobenius norm of the difference of the relation matrices divided by their number of
elements (B*N*N, N*B*B, K*K): a mean, as in the authors' released code (which takes
``.mean()`` of the squared differences). Relation matrices do not need the student's and
the teacher's widths to agree, so no projection is learnt and the loss has no parameters.

Defaults and their sources: ``alpha = 4`` (intra-image, the released code's ``w_patch``),
``beta = 0.1`` (inter-image, ``w_sample``), ``gamma = 0.2`` (random, ``w_rand``) and
``num_patches = K = 192`` are the defaults of the authors' released training script (seen
in copies of it; the paper's text could not be checked here), for DeiT students of a CaiT
teacher on ImageNet with 196 patches per image. The released code averages the three terms
over the distilled layer pairs (8 of them by default) and multiplies the sum by one more
weight (``distillation_beta``, 1 by default); in kdzoo each pair is one term, so weight
each term by 1/L for L pairs to match.

Choices the paper leaves open, and where kdzoo departs from it or from the released code:

- Which tokens: prefix tokens (class, distillation) are dropped, ``student_prefix_tokens``
  / ``teacher_prefix_tokens`` of them (the released code drops the student's extra tokens
  by count).
- CNN teachers (kdzoo's extension, not in the paper): a (B, C, H, W) map is read as H*W
  tokens in row-major order, and when the student's patch grid differs from the teacher's,
  the student's tokens are resized bilinearly (``align_corners=False``, no antialiasing)
  on their square grid to the teacher's grid (see :mod:`kdzoo.losses.vitkd`). The
  intra-image term costs O(B N^2) memory on the teacher's grid: a 32x32 teacher layer with
  batch 128 holds 128 x 1024 x 1024 relations (512 MiB in float32) per matrix.
- Normalisation: ``x / max(|x|, eps)`` with ``eps = 1e-12`` (``F.normalize``'s, as in the
  released code): an all-zero token stays zero (its relations are 0) and its gradient is
  finite, that of ``x / eps`` (large: 1/eps times the relations' gradient; a ReLU in
  front of the features blocks it); features of any scale up to float32's range of their
  squared norm are exact.
- Sampling: K indices without replacement, ``randperm(B*N)[:K]`` from torch's generator of
  the features' device (:meth:`ManifoldLoss.sample_patches`, which tests replace); all
  B*N patches when there are fewer than K. A new sample every forward, also in evaluation.
- Precision: float32 with autocast off, also under bf16 autocast (the features are cast
  with ``.float()``). The relations are float32 matmuls (exact unless TF32 matmuls are
  enabled with ``torch.backends.cuda.matmul.allow_tf32``, which kdzoo does not do). Each
  relation is a cosine known to about 1e-7 absolute, so when the student's and the
  teacher's relations agree to better than that (e.g. both nearly constant across patches)
  the loss, of order 1e-14, is rounding noise: negligible, like its gradient. Likewise the
  gradient to nearly parallel student tokens (all patches alike), the part of the
  relations' gradient orthogonal to each unit token, is resolved to about 1e-6 of that
  gradient's size (divided by the token's norm), not to 1e-5 of its own (tiny) size.
- Under DDP each process computes the inter-image and random terms on its own batch.
"""
import torch
import torch.nn as nn

from kdzoo.registry import MODELS
from .logit_distill import check_number
from .vitkd import check_count, device_type, patch_tokens, to_teacher_grid

#: The epsilon of the normalisation's denominator (``F.normalize``'s default).
NORM_EPS = 1e-12


def unit_tokens(x, eps):
    """``x / max(|x|, eps)`` along the last dimension."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)


def relation_gap(student, teacher):
    """Mean over all entries of ``(S S^T - T T^T)^2`` for batched (G, M, C_s) ``student``
    and (G, M, C_t) ``teacher``."""
    gap = torch.baddbmm(student @ student.transpose(1, 2), teacher, teacher.transpose(1, 2),
                        alpha=-1)
    return gap.square().mean()


@MODELS.register_module()
class ManifoldLoss(nn.Module):
    """``alpha * L_intra + beta * L_inter + gamma * L_random`` for one layer pair (Hao et
    al., NeurIPS 2022).

    Args:
        alpha: weight of the intra-image term, >= 0 (4 in the released code).
        beta: weight of the inter-image term, >= 0 (0.1).
        gamma: weight of the random-sampled term, >= 0 (0.2).
        num_patches: K, the patches sampled for the random term, >= 1 (192).
        student_prefix_tokens: tokens dropped from the front of the student's tokens.
        teacher_prefix_tokens: tokens dropped from the front of the teacher's tokens.
        eps: the normalisation's epsilon, > 0.
    """

    def __init__(self, alpha=4.0, beta=0.1, gamma=0.2, num_patches=192,
                 student_prefix_tokens=0, teacher_prefix_tokens=0, eps=NORM_EPS):
        super().__init__()
        owner = 'ManifoldLoss'
        check_number(owner, 'alpha', alpha, 0, strict=False)
        check_number(owner, 'beta', beta, 0, strict=False)
        check_number(owner, 'gamma', gamma, 0, strict=False)
        check_count(owner, 'num_patches', num_patches, 1)
        check_count(owner, 'student_prefix_tokens', student_prefix_tokens, 0)
        check_count(owner, 'teacher_prefix_tokens', teacher_prefix_tokens, 0)
        check_number(owner, 'eps', eps, 0, strict=True)
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.num_patches = num_patches
        self.student_prefix_tokens = student_prefix_tokens
        self.teacher_prefix_tokens = teacher_prefix_tokens
        self.eps = float(eps)

    def sample_patches(self, total, device):
        """Indices (min(K, total),) of the patches of the random term, drawn without
        replacement from ``range(total)`` (torch's generator of ``device``)."""
        return torch.randperm(total, device=device)[:self.num_patches]

    def forward(self, student_features, teacher_features):
        owner = 'ManifoldLoss'
        with torch.autocast(device_type=device_type(student_features), enabled=False):
            s, s_grid = patch_tokens(owner, 'student_features', student_features,
                                     self.student_prefix_tokens, 'student_prefix_tokens')
            t, t_grid = patch_tokens(owner, 'teacher_features', teacher_features,
                                     self.teacher_prefix_tokens, 'teacher_prefix_tokens')
            t = t.detach()
            s = unit_tokens(to_teacher_grid(owner, s, s_grid, t, t_grid), self.eps)
            t = unit_tokens(t, self.eps)
            b, n, _ = t.shape
            intra = relation_gap(s, t)
            inter = relation_gap(s.transpose(0, 1), t.transpose(0, 1))
            index = self.sample_patches(b * n, s.device)
            rand = relation_gap(s.reshape(b * n, -1)[index].unsqueeze(0),
                                t.reshape(b * n, -1)[index].unsqueeze(0))
            return self.alpha * intra + self.beta * inter + self.gamma * rand
