"""The review connector of ReviewKD: the student's levels fused from the deepest upward.

Chen, Liu, Zhao and Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021,
section 3 (the review mechanism, the residual learning framework and the attention-based
fusion). With the student's features ``F_s^1 .. F_s^n`` (shallow to deep) and the
teacher's ``F_t^1 .. F_t^n``, the review loss is

    L = sum_i D(U_i, F_t^i),   U_i = out_i(X_i),
    X_n = lat_n(F_s^n),   X_i = ABF(lat_i(F_s^i), up(X_{i+1}))  (i < n),

the paper's residual learning framework (its final design): each level's student feature
is fused with what the deeper levels already hold, so the teacher's level i is learned from
the student's levels i .. n. ``D`` is the hierarchical context loss
(:class:`~kdzoo.losses.review_kd.HCLLoss`). The attention-based fusion (ABF):
the deeper level's residual ``X_{i+1}`` is resized to the current level's size, the two
maps are concatenated and a convolution with a sigmoid gives two H x W attention maps
``a, b``; ``X_i = a * lat_i(F_s^i) + b * up(X_{i+1})``.

The layers, as in the authors' released code (no other source): ``lat_i`` is a 1x1
convolution without bias and BatchNorm to ``mid_channels``; the attention is one 1x1
convolution (2 * mid -> 2 channels, with bias) and a sigmoid; ``out_i`` is a 3x3 convolution
(padding 1, no bias) and BatchNorm to the teacher's width at level i; the 1x1 and 3x3
convolutions' weights are initialised with ``kaiming_uniform_(a=1)``, the attention
convolution with PyTorch's default. The residual handed to the next shallower level is the
fused ``X_i`` (mid channels), not the output ``U_i``.

The choices the paper leaves open, and where kdzoo departs from the released code:

- ``mid_channels`` (the fused width, one for all levels): the paper fixes none. kdzoo's
  default is ``min(512, in_channels[-1])``, the deepest student width capped at 512, the
  value of mdistiller's ReviewKD (its ``MAX_MID_CHANNEL`` = 512); the authors' CIFAR code
  uses 64 for ResNet students (whose deepest width is 64, so the same value there).
- Resizing the residual: nearest-neighbour interpolation to the current level's (H, W),
  as in the released code (a no-op where the sizes agree, as between ViT blocks; it also
  shrinks a residual that is larger than the current level, by picking samples).
- Resizing to the teacher (``size``): the released code resizes the fused map ``X_i`` to the
  teacher's size by nearest-neighbour interpolation before ``out_i`` (and hands that resized
  map upward). kdzoo instead resizes each output ``U_i`` bilinearly (align_corners=False)
  to the teacher's (H, W) when it differs, and hands the residual upward at the student's
  own size: kdzoo's extension for students whose grid differs from the teacher's stages
  (a ViT's 8x8 patch grid at every block against a CNN's 32, 16 and 8 px stages). Where
  every student level already has its teacher level's size (CNN to CNN pairs with matching
  strides), the two agree.
- Tokens (kdzoo's extension): a level may be ``(B, N, C)`` tokens, e.g. a ViT block's
  output; its first ``num_prefix_tokens`` tokens (class, distillation) are dropped and
  the remaining N - prefix patch tokens are reshaped, row-major, to a square
  ``(B, C, s, s)`` grid (an error if N - prefix is not a square). kdzoo fills
  ``num_prefix_tokens`` from the connected network (2 for the micro DeiT student).
- The released code also reviews the student's globally pooled feature as an extra 1x1
  level; here the levels are whatever the term binds.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS

#: mdistiller's cap on ReviewKD's fused width (its ``MAX_MID_CHANNEL``).
MAX_MID_CHANNELS = 512


def _check_positive_int(owner, name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f'{owner}: {name} must be an integer >= {minimum}, got {value!r}')


def _check_widths(owner, name, value):
    """``value`` as a list of positive ints; a ValueError unless it is a non-empty list."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f'{owner}: {name} must be a non-empty list of channel counts, one '
                         f'per level (shallow to deep), got {value!r}')
    for i, v in enumerate(value):
        _check_positive_int(owner, f'{name}[{i}]', v)
    return [int(v) for v in value]


def tokens_to_map(tokens, num_prefix_tokens, owner='ReviewKDFusion', level=None):
    """(B, prefix + s*s, C) tokens -> (B, C, s, s) map of the patch tokens (row-major)."""
    b, n, c = tokens.shape
    patches = n - num_prefix_tokens
    side = int(round(max(patches, 0) ** 0.5))
    if patches <= 0 or side * side != patches:
        where = '' if level is None else f' at level {level}'
        raise ValueError(f'{owner}: {n} tokens{where} minus {num_prefix_tokens} prefix tokens '
                         'do not form a square grid; check num_prefix_tokens')
    return tokens[:, num_prefix_tokens:].transpose(1, 2).reshape(b, c, side, side)


class AttentionFusion(nn.Module):
    """One level of the review (the paper's ABF): lateral 1x1 conv + BN to ``mid_channels``,
    attention fusion with the deeper level's residual (``fuse``), 3x3 conv + BN to
    ``out_channels``. Returns ``(output, residual)``."""

    def __init__(self, in_channels, mid_channels, out_channels, fuse):
        super().__init__()
        self.lateral = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1, bias=False),
                                     nn.BatchNorm2d(mid_channels))
        self.attention = nn.Conv2d(2 * mid_channels, 2, 1) if fuse else None
        self.output = nn.Sequential(nn.Conv2d(mid_channels, out_channels, 3, padding=1,
                                              bias=False),
                                    nn.BatchNorm2d(out_channels))
        nn.init.kaiming_uniform_(self.lateral[0].weight, a=1)
        nn.init.kaiming_uniform_(self.output[0].weight, a=1)

    def forward(self, x, residual=None):
        x = self.lateral(x)
        if self.attention is not None:
            residual = F.interpolate(residual, size=x.shape[-2:], mode='nearest')
            maps = torch.sigmoid(self.attention(torch.cat([x, residual], dim=1)))
            x = x * maps[:, 0:1] + residual * maps[:, 1:2]
        return self.output(x), x


@MODELS.register_module()
class ReviewKDFusion(nn.Module):
    """A list of student levels (shallow to deep) -> a list of maps shaped like the teacher's.

    The review connector of ReviewKD (Chen et al., CVPR 2021); see the module docstring for
    the equations and every choice. For a term whose arguments are bound to lists of
    layers::

        dict(loss=dict(type='HCLLoss'),
             inputs=dict(student_features=['student.layer1', 'student.layer2', 'student.layer3'],
                         teacher_features=['teacher.layer1', 'teacher.layer2', 'teacher.layer3']),
             connectors=dict(student_features=dict(type='ReviewKDFusion')))

    Args:
        in_channels: the student's width at each level, shallow to deep (filled in).
        out_channels: the teacher's width at each level (filled in); same length.
        mid_channels: the fused width; None: ``min(512, in_channels[-1])`` (mdistiller's).
        num_prefix_tokens: tokens in front of the patches of a (B, N, C) token level
            (filled in from the student; 0 for CNNs).
    """

    def __init__(self, in_channels, out_channels, mid_channels=None, num_prefix_tokens=0):
        super().__init__()
        owner = 'ReviewKDFusion'
        in_channels = _check_widths(owner, 'in_channels', in_channels)
        out_channels = _check_widths(owner, 'out_channels', out_channels)
        if len(in_channels) != len(out_channels):
            raise ValueError(f'{owner}: in_channels has {len(in_channels)} levels and '
                             f'out_channels {len(out_channels)}; the student and the teacher '
                             'must be bound to as many layers')
        if mid_channels is None:
            mid_channels = min(MAX_MID_CHANNELS, in_channels[-1])
        _check_positive_int(owner, 'mid_channels', mid_channels)
        _check_positive_int(owner, 'num_prefix_tokens', num_prefix_tokens, minimum=0)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.mid_channels = mid_channels
        self.num_prefix_tokens = num_prefix_tokens
        deepest = len(in_channels) - 1
        self.levels = nn.ModuleList(
            AttentionFusion(c_in, mid_channels, c_out, fuse=i < deepest)
            for i, (c_in, c_out) in enumerate(zip(in_channels, out_channels)))

    def forward(self, features, size=None):
        """``features``: the student's levels, shallow to deep, each (B, C, H, W) or
        (B, N, C) tokens; ``size``: the teacher's (H, W) at each level (None: keep the
        student's). Returns the outputs, shallow to deep, (B, out_channels[i], H_i, W_i)."""
        owner = 'ReviewKDFusion'
        if isinstance(features, torch.Tensor) or not isinstance(features, (list, tuple)):
            raise ValueError(f'{owner} takes a list of feature tensors, one per level; bind '
                             'its argument to a list of layers')
        n = len(self.levels)
        if len(features) != n:
            raise ValueError(f'{owner}: got {len(features)} feature levels, built for {n} '
                             f'(in_channels {self.in_channels})')
        if size is not None and len(size) != n:
            raise ValueError(f'{owner}: got {len(size)} teacher sizes for {n} levels')
        maps = []
        for i, x in enumerate(features):
            if x.dim() == 3:
                x = tokens_to_map(x, self.num_prefix_tokens, owner, level=i)
            elif x.dim() != 4:
                raise ValueError(f'{owner}: level {i} has shape {tuple(x.shape)}; expected '
                                 '(B, C, H, W) maps or (B, N, C) tokens')
            if x.shape[1] != self.in_channels[i]:
                raise ValueError(f'{owner}: level {i} has {x.shape[1]} channels, built for '
                                 f'{self.in_channels[i]} (in_channels {self.in_channels})')
            if x.shape[0] != features[0].shape[0]:
                raise ValueError(f'{owner}: level {i} has batch size {x.shape[0]}, level 0 '
                                 f'{features[0].shape[0]}; all levels must come from one batch')
            maps.append(x)
        outputs = [None] * n
        residual = None
        for i in range(n - 1, -1, -1):
            outputs[i], residual = self.levels[i](maps[i], residual)
            if size is not None and tuple(outputs[i].shape[-2:]) != tuple(size[i]):
                outputs[i] = F.interpolate(outputs[i], size=tuple(size[i]), mode='bilinear',
                                           align_corners=False)
        return outputs
