"""ViTKD: mimicking for the shallow layers, generation for the deep layer.

Zhendong Yang, Zhe Li, Ailing Zeng, Zexian Li, Chun Yuan and Yu Li, "ViTKD: Practical
Guidelines for ViT Feature Knowledge Distillation", arXiv:2209.02432, 2022. With the
student's patch tokens ``S_l`` (B, N, C_s) and the teacher's ``T_l`` (B, N, C_t) of the
distilled layers, the last pair being the deep one:

- mimicking (shallow layers): ``L_mim = sum_l sum_{n,c} (W_l S_l - T_l)^2 / B``, one linear
  projection ``W_l`` (with bias) per layer;
- generation (deep layer): the projected tokens ``A = W_d S_d`` have a random fraction
  ``lambda`` of their tokens replaced by a learnable mask token, the result is laid out on
  the token grid and passed through a generative block ``G`` (conv3x3 - ReLU - conv3x3, the
  teacher's width throughout), and ``L_gen = sum_{n masked, c} (G(M(A)) - T_d)^2 / (B *
  lambda)``;

and ``L = alpha_vitkd * L_mim + beta_vitkd * L_gen``.

Defaults and their sources: ``alpha_vitkd = 3e-5``, ``beta_vitkd = 3e-6`` and
``lambda_vitkd = 0.5`` are the defaults of the authors' released ``ViTKDLoss``
(github.com/yzd-v/cls_KD), used there for DeiT students of DeiT-III teachers on ImageNet with
the first two blocks mimicked and the last block generated. They are tuned for summed
(not averaged) squared errors over 196 tokens of 384-1024 channels; with other widths and
token counts (kdzoo's CIFAR setting: 16-64 teacher channels on up to 1024 positions) the
loss's scale differs, so these weights are a starting point, not a tuned setting.

Choices the paper leaves open, and where kdzoo departs from it or from the released code:

- Which tokens: prefix tokens (class, distillation) are dropped,
  ``student_prefix_tokens`` / ``teacher_prefix_tokens`` of them (2 for kdzoo's micro DeiT
  with a distillation token, 1 for a ViT with a class token); the counts apply to token
  tensors only, a CNN's (B, C, H, W) map has none.
- CNN teachers (kdzoo's extension, not in the paper, which distils ViT into ViT): a
  teacher (or student) given as a (B, C, H, W) map is read as H*W tokens in row-major
  order. When the student's patch grid differs from the teacher's, the student's tokens
  are laid out on their square grid and resized bilinearly (``align_corners=False``, no
  antialiasing) to the teacher's grid before the projection; the loss is then taken on
  the teacher's grid, and the generation block and the mask act on it. Projection and
  bilinear resizing are both linear and commute (bilinear weights sum to 1), so the order
  only affects cost.
- Projections: a linear layer (with bias) per shallow layer and one for the deep layer,
  skipped (identity) for a layer whose student and teacher widths are equal, as in the
  released code. PyTorch's default initialisation; the mask token starts at zero (as in
  the released code).
- The mask: exactly ``N - int(N * (1 - lambda))`` tokens of each image are masked, chosen by
  sorting uniform noise (the released code's per-image shuffle), drawn from torch's
  generator of the features' device (:meth:`ViTKDLoss.sample_mask`, which tests replace).
  The generation loss is taken on the masked tokens only and divided by ``lambda`` (and by
  B), as in the released code (the paper's text does not spell the normalisation out).
  Every forward draws a new mask, also in evaluation mode.
- Precision: everything runs in float32 with autocast off, also under bf16 autocast (the
  features are cast with ``.float()``). On a GPU the convolutions of the generation block
  follow ``torch.backends.cudnn.allow_tf32`` (on by default), like the network's own.
- Under DDP each process computes the loss on its own batch (B is the local batch).

The trainable parts (projections, mask token, generation block) are submodules of the
loss, so kdzoo's optimiser trains them and checkpoints save them.

Binding (kdzoo delivers a list for a list of sources)::

    dict(loss=dict(type='ViTKDLoss', student_channels=[128, 128, 128],
                   teacher_channels=[16, 32, 64], student_prefix_tokens=2),
         inputs=dict(student_features=['student.blocks.0', 'student.blocks.1',
                                       'student.blocks.3'],
                     teacher_features=['teacher.layer1', 'teacher.layer2',
                                       'teacher.layer3']))
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS
from .logit_distill import check_number


def device_type(tensor):
    """The device type of ``tensor`` (for turning autocast off around a loss), 'cpu' for a
    non-tensor, which the argument checks then reject."""
    return tensor.device.type if torch.is_tensor(tensor) else 'cpu'


def check_count(owner, name, value, minimum):
    """Raise a ValueError unless ``value`` is an int (not a bool) >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f'{owner}: {name} must be an integer >= {minimum}, got {value!r}')


def patch_tokens(owner, name, features, prefix_tokens, prefix_name):
    """``(tokens, grid)`` of one layer's features, in float32.

    ``features`` is a (B, N, C) token tensor whose first ``prefix_tokens`` tokens are
    dropped, or a (B, C, H, W) map read as H*W tokens in row-major order (``prefix_tokens``
    does not apply to a map, which has none). ``grid`` is the tokens' 2-D layout: (H, W)
    for a map, (r, r) for r*r tokens, None for tokens that do not form a square.
    """
    if not torch.is_tensor(features) or features.dim() not in (3, 4):
        shape = tuple(features.shape) if torch.is_tensor(features) else type(features).__name__
        raise ValueError(f'{owner}: {name} must be (B, N, C) tokens or a (B, C, H, W) map, '
                         f'got {shape}')
    if not features.is_floating_point():
        raise ValueError(f'{owner}: {name} must be floating point, got {features.dtype}')
    x = features.float()
    if x.dim() == 4:  # a map has no prefix tokens: the count applies to tokens only
        h, w = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), (h, w)
    n = x.shape[1] - prefix_tokens
    if n < 1:
        raise ValueError(f'{owner}: {name} has {x.shape[1]} tokens, not more than '
                         f'{prefix_name}={prefix_tokens}; no patch token is left')
    side = math.isqrt(n)
    return x[:, prefix_tokens:], ((side, side) if side * side == n else None)


def to_teacher_grid(owner, student, student_grid, teacher, teacher_grid):
    """The student's tokens on the teacher's grid: bilinearly resized when both grids are
    known and differ (kdzoo's extension for CNN teachers), unchanged when they match."""
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f'{owner}: the student features have batch {student.shape[0]} and '
                         f'the teacher features batch {teacher.shape[0]}; they must match')
    if student_grid is not None and teacher_grid is not None:
        if student_grid == teacher_grid:
            return student
        b, _, c = student.shape
        grid = student.transpose(1, 2).reshape(b, c, *student_grid)
        grid = F.interpolate(grid, size=teacher_grid, mode='bilinear', align_corners=False)
        return grid.flatten(2).transpose(1, 2)
    if student.shape[1] != teacher.shape[1]:
        raise ValueError(f'{owner}: the student has {student.shape[1]} patch tokens and the '
                         f'teacher {teacher.shape[1]}; they can be resized only when both '
                         'form a square grid (or the teacher is a map); check the prefix '
                         'token counts')
    return student


def check_channels(owner, name, values):
    if (not isinstance(values, (list, tuple)) or not values
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                       for v in values)):
        raise ValueError(f'{owner}: {name} must be a non-empty list of positive integers '
                         f'(one width per distilled layer), got {values!r}')
    return [int(v) for v in values]


@MODELS.register_module()
class ViTKDLoss(nn.Module):
    """``alpha_vitkd * L_mim + beta_vitkd * L_gen`` over a list of layer pairs (Yang et
    al., 2022); the last pair is the deep (generation) layer, the others shallow.

    Args:
        student_channels: the student's width at each distilled layer, in the order of the
            features (kdzoo does not fill them for losses).
        teacher_channels: the teacher's width at each distilled layer, same length.
        alpha_vitkd: weight of the shallow layers' mimicking, >= 0 (3e-5, released code).
        beta_vitkd: weight of the deep layer's generation, >= 0 (3e-6, released code).
        lambda_vitkd: the fraction of the deep layer's tokens masked, in (0, 1] (0.5).
        student_prefix_tokens: tokens dropped from the front of each student token tensor.
        teacher_prefix_tokens: tokens dropped from the front of each teacher token tensor.
    """

    def __init__(self, student_channels, teacher_channels, alpha_vitkd=3e-5,
                 beta_vitkd=3e-6, lambda_vitkd=0.5, student_prefix_tokens=0,
                 teacher_prefix_tokens=0):
        super().__init__()
        owner = 'ViTKDLoss'
        student_channels = check_channels(owner, 'student_channels', student_channels)
        teacher_channels = check_channels(owner, 'teacher_channels', teacher_channels)
        if len(student_channels) != len(teacher_channels):
            raise ValueError(f'{owner}: student_channels {student_channels} and '
                             f'teacher_channels {teacher_channels} must have the same length '
                             '(one entry per distilled layer pair)')
        check_number(owner, 'alpha_vitkd', alpha_vitkd, 0, strict=False)
        check_number(owner, 'beta_vitkd', beta_vitkd, 0, strict=False)
        check_number(owner, 'lambda_vitkd', lambda_vitkd, 0, strict=True)
        if lambda_vitkd > 1:
            raise ValueError(f'{owner}: lambda_vitkd (the masked fraction) must be in (0, 1], '
                             f'got {lambda_vitkd!r}')
        check_count(owner, 'student_prefix_tokens', student_prefix_tokens, 0)
        check_count(owner, 'teacher_prefix_tokens', teacher_prefix_tokens, 0)
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.alpha_vitkd, self.beta_vitkd = float(alpha_vitkd), float(beta_vitkd)
        self.lambda_vitkd = float(lambda_vitkd)
        self.student_prefix_tokens = student_prefix_tokens
        self.teacher_prefix_tokens = teacher_prefix_tokens

        def projection(cs, ct):
            return nn.Linear(cs, ct) if cs != ct else nn.Identity()

        pairs = list(zip(student_channels, teacher_channels))
        self.mimic = nn.ModuleList([projection(cs, ct) for cs, ct in pairs[:-1]])
        cs, ct = pairs[-1]
        self.align = projection(cs, ct)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, ct))
        self.generation = nn.Sequential(
            nn.Conv2d(ct, ct, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(ct, ct, kernel_size=3, padding=1))

    def sample_mask(self, batch, num_tokens, device):
        """A (batch, num_tokens) bool mask, True where a token is masked: exactly
        ``num_tokens - int(num_tokens * (1 - lambda_vitkd))`` per image, uniformly at
        random (torch's generator of ``device``)."""
        keep = int(num_tokens * (1 - self.lambda_vitkd))
        order = torch.rand(batch, num_tokens, device=device).argsort(dim=1)
        mask = torch.ones(batch, num_tokens, dtype=torch.bool, device=device)
        return mask.scatter_(1, order[:, :keep], False)

    def _layers(self, name, features):
        if not isinstance(features, (list, tuple)):
            raise ValueError(f'ViTKDLoss: {name} must be a list of tensors, one per distilled '
                             f'layer ({len(self.student_channels)}), the deep layer last; got '
                             f'{type(features).__name__} (bind the argument to a list of '
                             'sources)')
        if len(features) != len(self.student_channels):
            raise ValueError(f'ViTKDLoss: {name} has {len(features)} layers; the loss was '
                             f'built for {len(self.student_channels)} (the length of '
                             'student_channels / teacher_channels)')
        return list(features)

    def _pair(self, index, student, teacher):
        """(student tokens on the teacher's grid, teacher tokens, teacher grid) of pair
        ``index``, with the widths checked."""
        owner = 'ViTKDLoss'
        s, s_grid = patch_tokens(owner, f'student_features[{index}]', student,
                                 self.student_prefix_tokens, 'student_prefix_tokens')
        t, t_grid = patch_tokens(owner, f'teacher_features[{index}]', teacher.detach(),
                                 self.teacher_prefix_tokens, 'teacher_prefix_tokens')
        for who, x, expected in (('student', s, self.student_channels[index]),
                                 ('teacher', t, self.teacher_channels[index])):
            if x.shape[-1] != expected:
                raise ValueError(f'{owner}: {who}_features[{index}] has {x.shape[-1]} '
                                 f'channels, but {who}_channels[{index}] is {expected}')
        return to_teacher_grid(owner, s, s_grid, t, t_grid), t, t_grid

    def forward(self, student_features, teacher_features):
        students = self._layers('student_features', student_features)
        teachers = self._layers('teacher_features', teacher_features)
        with torch.autocast(device_type=device_type(students[0]), enabled=False):
            pairs = [self._pair(i, s, t) for i, (s, t) in enumerate(zip(students, teachers))]
            batch = pairs[0][0].shape[0]
            if any(s.shape[0] != batch for s, _, _ in pairs):
                raise ValueError('ViTKDLoss: all layers must have the same batch size, got '
                                 f'{[s.shape[0] for s, _, _ in pairs]}')
            mimic = pairs[0][0].new_zeros(())
            for project, (s, t, _) in zip(self.mimic, pairs[:-1]):
                mimic = mimic + (project(s) - t).square().sum()
            return (self.alpha_vitkd * mimic / batch
                    + self.beta_vitkd * self._generation_loss(*pairs[-1]))

    def _generation_loss(self, student, teacher, grid):
        """sum over masked tokens of (G(masked projection) - teacher)^2 / (B * lambda)."""
        if grid is None:
            raise ValueError(f'ViTKDLoss: the deep layer\'s {teacher.shape[1]} teacher patch '
                             'tokens do not form a square grid, which the generation block '
                             'needs; check teacher_prefix_tokens')
        x = self.align(student)
        b, n, c = x.shape
        mask = self.sample_mask(b, n, x.device)
        if (not torch.is_tensor(mask) or mask.dtype != torch.bool
                or tuple(mask.shape) != (b, n)):
            raise ValueError(f'ViTKDLoss: sample_mask must return a bool ({b}, {n}) tensor, '
                             f'got {getattr(mask, "dtype", type(mask))} '
                             f'{tuple(getattr(mask, "shape", ()))}')
        mask = mask.unsqueeze(-1)
        x = torch.where(mask, self.mask_token.float(), x)
        x = self.generation(x.transpose(1, 2).reshape(b, c, *grid))
        diff = (x.flatten(2).transpose(1, 2) - teacher) * mask
        return diff.square().sum() / (b * self.lambda_vitkd)
