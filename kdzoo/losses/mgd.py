"""Masked generative distillation (MGD).

Yang, Li, Shao, Shi, Yuan and Yuan, "Masked Generative Distillation", ECCV 2022,
section 3 (eqs. 2-5). The student's feature map ``S`` (aligned to the teacher's width by
a 1x1 convolution ``f_align`` when the widths differ) is masked at random positions,

    ``M_ij = 0 if R_ij < lambda else 1``,  ``R_ij ~ U(0, 1)`` per sample and position,

and a generation block ``G`` (3x3 convolution, ReLU, 3x3 convolution, all of the
teacher's width) has to produce the teacher's full feature map ``T`` from it:

    ``L_dis = sum_{c, i, j} (T_cij - G(f_align(S) * M)_cij)^2``,

summed over channels and positions and averaged over the batch (the authors' code divides
the summed squares by the batch size), and ``L_MGD = alpha_mgd * L_dis``.

Hyper-parameters, and where they come from:

- ``alpha_mgd`` multiplies the loss, so that a term of ``weight=1`` is the paper's loss;
  the term's ``weight`` multiplies on top. Default 7e-5: the authors' released ImageNet
  classification config (ResNet-34 -> ResNet-18, ``alpha_mgd=0.00007``). The summed
  squares grow with the map's size (channels x positions), so a different layer or
  network needs its own value (the authors' detection and segmentation settings are
  2e-5).
- ``lambda_mgd``, the mask ratio (the expected share of masked positions), defaults to
  0.5, a choice: the authors' released classification code masks whole *channels*
  ((B, C, 1, 1) masks, its spatial mask commented out) with ratio 0.15, while its
  docstring states 0.5 and the paper describes the spatial (pixel) mask kdzoo implements;
  the authors' detection settings use a spatial mask with ratio 0.65.

Choices the paper leaves open, and kdzoo's departures:

- The mask is drawn from torch's global generator on the features' device, per sample and
  position, the same for every channel (:meth:`MGDLoss.sample_mask`); masked positions of
  the aligned student map are zeroed. It is drawn in training and evaluation alike (the
  loss is only meaningful in training).
- (B, N, C) tokens are accepted on either side: the first ``num_prefix_tokens`` tokens
  (class/distillation tokens) are left out and the remaining ones, which must be a square
  number ``h * h``, are read as an h x h grid in row-major order (the patch order of a ViT)
  and made a (B, C, h, h) map.
- When the student's spatial size differs from the teacher's, the student map is resized
  to the teacher's bilinearly (``align_corners=False``) before the 1x1 alignment (the two
  commute: both are linear and the bilinear weights sum to 1). The authors' code requires
  equal sizes.
- Computed in float32, also under bf16 autocast (the features are cast with ``.float()``
  and autocast is off inside, so the alignment and generation convolutions run in
  float32).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS
from .crd import check_int, prefix_tokens_pair
from .logit_distill import check_number


def as_feature_map(owner, side, features, channels, num_prefix_tokens):
    """A (B, C, H, W) float32 map of a map or of (B, N, C) tokens (their grid after the
    first ``num_prefix_tokens``); C must be ``channels``."""
    x = features.float()
    if x.dim() == 3:
        b, n, c = x.shape
        grid = n - num_prefix_tokens
        side_len = math.isqrt(max(grid, 0))
        if grid <= 0 or side_len * side_len != grid:
            raise ValueError(f'{owner}: {side} tokens {tuple(x.shape)} minus '
                             f'num_prefix_tokens={num_prefix_tokens} leave {grid} tokens, '
                             'not a square grid h x h')
        x = x[:, num_prefix_tokens:].transpose(1, 2).reshape(b, c, side_len, side_len)
    elif x.dim() != 4:
        raise ValueError(f'{owner}: {side} features {tuple(x.shape)} must be a (B, C, H, W) '
                         'map or (B, N, C) tokens')
    if x.shape[1] != channels:
        raise ValueError(f'{owner}: {side} features {tuple(features.shape)} have '
                         f'{x.shape[1]} channels but {side}_channels={channels}; set '
                         f"{side}_channels to the bound layer's width")
    return x


@MODELS.register_module()
class MGDLoss(nn.Module):
    """``alpha_mgd * sum (T - G(f_align(S) * M))^2 / B`` (Yang et al., ECCV 2022).

    ``forward(student_features, teacher_features)``: (B, C, H, W) maps or (B, N, C) tokens
    of the bound layers. Trains its alignment (``align``, a 1x1 convolution with bias, only
    when the widths differ) and its generation block (``generation``).

    Args:
        student_channels: width of the student's bound layer (required; kdzoo fills
            widths in only for connectors).
        teacher_channels: width of the teacher's bound layer (required).
        alpha_mgd: the loss's factor, >= 0 (7e-5, the authors' ImageNet classification
            setting).
        lambda_mgd: the mask ratio, in [0, 1) (0.5, a choice; see the module docstring).
        num_prefix_tokens: class/distillation tokens at the front of (B, N, C) tokens: an
            int for both sides or a pair (student, teacher).
    """

    def __init__(self, student_channels, teacher_channels, alpha_mgd=7e-5, lambda_mgd=0.5,
                 num_prefix_tokens=0):
        super().__init__()
        check_int('MGDLoss', 'student_channels', student_channels, 1)
        check_int('MGDLoss', 'teacher_channels', teacher_channels, 1)
        check_number('MGDLoss', 'alpha_mgd', alpha_mgd, 0, strict=False)
        if not (isinstance(lambda_mgd, (int, float)) and not isinstance(lambda_mgd, bool)
                and 0 <= lambda_mgd < 1):
            raise ValueError(f'MGDLoss: lambda_mgd (the mask ratio) must be a number in '
                             f'[0, 1), got {lambda_mgd!r}')
        self.prefix_tokens = prefix_tokens_pair('MGDLoss', num_prefix_tokens)
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.alpha_mgd, self.lambda_mgd = float(alpha_mgd), float(lambda_mgd)
        self.align = (nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
                      if student_channels != teacher_channels else None)
        self.generation = nn.Sequential(
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3, padding=1))

    def sample_mask(self, shape, device):
        """A float mask of ``shape`` (B, 1, H, W): 0 with probability ``lambda_mgd``, else
        1, from torch's global generator."""
        return (torch.rand(shape, device=device) >= self.lambda_mgd).float()

    def forward(self, student_features, teacher_features):
        s = as_feature_map('MGDLoss', 'student', student_features, self.student_channels,
                           self.prefix_tokens[0])
        t = as_feature_map('MGDLoss', 'teacher', teacher_features.detach(),
                           self.teacher_channels, self.prefix_tokens[1])
        if s.shape[0] != t.shape[0]:
            raise ValueError(f'MGDLoss: the student features hold {s.shape[0]} samples but '
                             f'the teacher features {t.shape[0]}')
        with torch.autocast(device_type=s.device.type, enabled=False):
            if s.shape[-2:] != t.shape[-2:]:
                s = F.interpolate(s, size=t.shape[-2:], mode='bilinear', align_corners=False)
            if self.align is not None:
                s = self.align(s)
            mask = self.sample_mask((s.shape[0], 1, *s.shape[-2:]), s.device)
            generated = self.generation(s * mask)
            return (generated - t).square().sum() * (self.alpha_mgd / s.shape[0])

    def extra_repr(self):
        return (f'student_channels={self.student_channels}, '
                f'teacher_channels={self.teacher_channels}, alpha_mgd={self.alpha_mgd}, '
                f'lambda_mgd={self.lambda_mgd}')
