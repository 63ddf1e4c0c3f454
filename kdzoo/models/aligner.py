"""The aligner between a transformer student's tokens and a CNN teacher's feature map.

Chen et al., "DearKD: Data-Efficient Early Knowledge Distillation for Vision
Transformers", CVPR 2022, section 3.1: the student's tokens H_S (l x d) and the teacher's
feature map H_T (h x w x c) differ in shape, so the tokens are reshaped to a map and passed
through a depth-wise convolution, LayerNorm and ReLU before the hidden-layer loss.
"""
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@MODELS.register_module()
class Aligner(nn.Module):
    """(B, prefix + H*W, C_s) tokens -> (B, C_t, H_t, W_t) map.

    Steps: drop the prefix (class, distillation) tokens, reshape the patch tokens to a
    (C_s, H, W) map (square grid), depth-wise 3x3 convolution, LayerNorm over channels,
    ReLU, then a 1x1 convolution to the teacher's channels (the paper's aligner keeps the
    width; the projection lets any student width meet any teacher stage) and bilinear
    resizing to the teacher's spatial size when it differs.

    Args:
        student_channels: C_s, the student's width.
        teacher_channels: C_t; None means C_s and no projection.
        num_prefix_tokens: tokens in front of the patches (2 with a distillation token).
        kernel_size: of the depth-wise convolution.
    """

    def __init__(self, student_channels, teacher_channels=None, num_prefix_tokens=2,
                 kernel_size=3):
        super().__init__()
        teacher_channels = teacher_channels or student_channels
        self.num_prefix_tokens = num_prefix_tokens
        self.dwconv = nn.Conv2d(student_channels, student_channels, kernel_size,
                                padding=kernel_size // 2, groups=student_channels)
        self.norm = ChannelLayerNorm(student_channels)
        self.act = nn.ReLU()
        self.proj = (nn.Conv2d(student_channels, teacher_channels, 1)
                     if teacher_channels != student_channels else nn.Identity())

    def tokens_to_map(self, tokens):
        b, n, c = tokens.shape
        patches = tokens[:, self.num_prefix_tokens:]
        side = int(round((n - self.num_prefix_tokens) ** 0.5))
        if side * side != patches.shape[1]:
            raise ValueError(f'{n} tokens minus {self.num_prefix_tokens} prefix tokens do not '
                             'form a square grid; check num_prefix_tokens')
        return patches.transpose(1, 2).reshape(b, c, side, side)

    def forward(self, tokens, size=None):
        """Aligned map; ``size`` = the teacher's (H_t, W_t), None to keep the grid."""
        x = self.act(self.norm(self.dwconv(self.tokens_to_map(tokens))))
        x = self.proj(x)
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)
        return x
