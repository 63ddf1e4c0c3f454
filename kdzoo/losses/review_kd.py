"""The hierarchical context loss (HCL) of ReviewKD.

Chen, Liu, Zhao and Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021,
section 3 (the hierarchical context loss): the distance ``D`` between a reviewed student
map and the teacher's map at each level compares them at several levels of context by
spatial pyramid pooling, so that both local and global information is transferred. With
``d = F_s - F_t`` at one level, ``(B, C, H, W)``, and the pooled differences ``P_l(d)``
(adaptive average pooling to l x l),

    HCL(F_s, F_t) = (mse(d) + sum_k w_k mse(P_{l_k}(d))) / (1 + sum_k w_k),
    w_k = 2^-k for the k-th pool size used (k = 1, 2, ...),

``mse`` the mean of the squares over all elements, and the review loss is the sum of HCL
over the levels. Average pooling is linear, so ``P_l(F_s) - P_l(F_t) = P_l(d)``: this is
the MSE of the pooled maps, computed from the difference (which keeps near-equal maps
exact in float32: pooling each map first would round away their difference).

The paper describes the pyramid (spatial pyramid pooling of both maps into several
levels of context, the L2 distances of the levels combined) but not its sizes or weights;
kdzoo takes them from the authors' released code:

- pool sizes (4, 2, 1) after the full-resolution term, weights halved per pyramid level
  (1, 0.5, 0.25, 0.125) and divided by their sum;
- a pool size is used only where it neither enlarges the map nor leaves it unchanged, i.e.
  ``l <= H`` and ``l <= W`` and not ``(H, W) == (l, l)`` (for square maps: ``l < H``, the
  released code's condition, which checks H only): an 8x8 map gets all three (total weight
  1.875), a 4x4 map 2x2 and 1x1 (weights 0.5 and 0.25), a 2x2 map 1x1 (0.5), a 1x1 map
  the full-resolution term alone. The halving counts the pool sizes used, so the first
  used always weighs 0.5;
- the levels are summed, not averaged (the released code's ``hcl``).

mdistiller's ReviewKD multiplies the review loss by a weight (its default 1.0) and ramps
it up linearly over the first 20 epochs (``min(epoch / 20, 1)``, its ``WARMUP_EPOCHS``);
in kdzoo the weight is the term's ``weight`` and the warm-up its stage schedule (see
:class:`~kdzoo.losses.dkd.DKDLoss` for the ``DistillStageHook`` schedule).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS

#: The pyramid of the released code: 4x4, 2x2 and 1x1 after the full map.
HCL_POOL_SIZES = (4, 2, 1)


def check_pool_sizes(owner, pool_sizes):
    """The pool sizes as a tuple; a ValueError unless they are distinct positive ints in
    decreasing order (finer context first, as each weighs half the previous one)."""
    ok = isinstance(pool_sizes, (list, tuple)) and all(
        isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in pool_sizes)
    if ok:
        ok = all(a > b for a, b in zip(pool_sizes, pool_sizes[1:]))
    if not ok:
        raise ValueError(f'{owner}: pool_sizes must be a list of positive integers in '
                         f'decreasing order (e.g. {HCL_POOL_SIZES}), got {pool_sizes!r}')
    return tuple(pool_sizes)


def as_levels(owner, name, features):
    """``features`` as a list of tensors (a single tensor is one level)."""
    if isinstance(features, torch.Tensor):
        return [features]
    if not isinstance(features, (list, tuple)) or not features:
        raise ValueError(f'{owner}: {name} must be a non-empty list of (B, C, H, W) tensors, '
                         f'one per level, got {type(features).__name__}')
    return list(features)


def pyramid_mse(diff, pool_sizes):
    """The HCL of one level from its float32 difference map (see the module docstring)."""
    h, w = diff.shape[-2:]
    loss = diff.square().mean()
    weight, total = 1.0, 1.0
    for size in pool_sizes:
        if size > h or size > w or (h, w) == (size, size):
            continue
        weight /= 2
        total += weight
        loss = loss + weight * F.adaptive_avg_pool2d(diff, size).square().mean()
    return loss / total


@MODELS.register_module()
class HCLLoss(nn.Module):
    """The hierarchical context loss of ReviewKD (Chen et al., CVPR 2021), summed over levels.

    ``forward(student_features, teacher_features)``: two lists of (B, C, H, W) maps, shallow
    to deep (a single tensor is one level), of equal shapes level by level: the reviewed
    student maps (:class:`~kdzoo.models.review_kd.ReviewKDFusion` on the student's list) and
    the teacher's. Computed in float32, also under bf16 autocast (the maps are cast with
    ``.float()`` and autocast is off inside); the teacher's maps are detached.

    Args:
        pool_sizes: the pyramid's pool sizes after the full-resolution term, decreasing
            (the released code's (4, 2, 1)); the k-th used weighs 2^-k.
    """

    def __init__(self, pool_sizes=HCL_POOL_SIZES):
        super().__init__()
        self.pool_sizes = check_pool_sizes('HCLLoss', pool_sizes)

    def forward(self, student_features, teacher_features):
        owner = 'HCLLoss'
        students = as_levels(owner, 'student_features', student_features)
        teachers = as_levels(owner, 'teacher_features', teacher_features)
        if len(students) != len(teachers):
            raise ValueError(f'{owner}: {len(students)} student levels and {len(teachers)} '
                             'teacher levels; bind both to as many layers')
        for i, (s, t) in enumerate(zip(students, teachers)):
            if s.dim() != 4 or s.shape != t.shape:
                raise ValueError(f'{owner}: at level {i} the student map {tuple(s.shape)} and '
                                 f'the teacher map {tuple(t.shape)} must both be (B, C, H, W) '
                                 'of the same shape; connect the student with ReviewKDFusion')
        device = students[0].device.type
        with torch.autocast(device_type=device, enabled=False):
            total = 0
            for s, t in zip(students, teachers):
                total = total + pyramid_mse(s.float() - t.detach().float(), self.pool_sizes)
            return total
