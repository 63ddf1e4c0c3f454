"""Multi-Head Convolutional-Attention (MHCA) of DearKD.

Chen et al., "DearKD: Data-Efficient Early Knowledge Distillation for Vision
Transformers", CVPR 2022, section 3.1: each head's attention logits get a positional term
``v_h^T r_ij`` on top of the content term ``q_i^T k_j / sqrt(d)``,

    A_h = softmax(Q_h K_h^T / sqrt(d) + P_h),   P_h[i, j] = v_h^T r(j - i),

where ``r(dx, dy) = (dx, dy, dx^2 + dy^2)`` is the quadratic relative encoding of
Cordonnier et al., "On the relationship between self-attention and convolutional
layers", ICLR 2020. With ``v_h = -alpha * (-2 dx_h, -2 dy_h, 1)`` the term equals
``-alpha * |delta - Delta_h|^2`` up to a constant per query, a Gaussian attention peak at
offset ``Delta_h``; with enough heads the layer expresses a K x K convolution (one head
per kernel offset). The content term learns non-local semantics, the positional term local
detail.
"""
import math
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vit_blocks import Attention

#: Number of relative-position features per query/key pair: dx, dy, dx^2 + dy^2.
REL_FEATURES = 3


@lru_cache(maxsize=16)
def relative_features(grid, device='cpu'):
    """(N, N, 3) features ``(dx, dy, dx^2 + dy^2)`` of key j relative to query i for the
    row-major patch order of a ``grid = (H, W)`` token grid.

    Cached per grid and device and shared by all layers: they depend on nothing learned.
    Made outside inference mode, so that a first call under ``torch.inference_mode`` does
    not cache a tensor that training could not use.
    """
    h, w = grid
    with torch.inference_mode(False):
        ys, xs = torch.meshgrid(torch.arange(h, device=device),
                                torch.arange(w, device=device), indexing='ij')
        xs, ys = xs.reshape(-1), ys.reshape(-1)
        dx = (xs[None, :] - xs[:, None]).float()
        dy = (ys[None, :] - ys[:, None]).float()
        return torch.stack([dx, dy, dx * dx + dy * dy], dim=-1)


def local_offsets(num_heads):
    """One kernel offset per head, nearest to the centre first: (0,0), then the 4
    neighbours, the 4 diagonals, and so on (12 heads: a 3x3 kernel plus three heads two
    patches away)."""
    radius = math.ceil(math.sqrt(num_heads))
    cells = [(dx, dy) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    # Ties in distance are broken by angle so that the order is deterministic and spread.
    cells.sort(key=lambda c: (c[0] ** 2 + c[1] ** 2, math.atan2(c[1], c[0])))
    return cells[:num_heads]


class MHCA(Attention):
    """Multi-head self-attention with a learned relative positional term per head.

    The positional term is added to the attention logits as the float ``attn_mask`` of
    ``scaled_dot_product_attention`` (see :meth:`Attention.forward`), so with it zeroed the
    layer is exactly MHSA with the same weights.

    Prefix tokens (class, distillation) have no position: their bias to and from every
    token is zero, so the content term alone decides how much a patch attends to them.
    The patch grid is inferred from the token count (square grids), so one layer serves
    14x14 (224 px), 24x24 (384 px) or 8x8 (32 px with 4x4 patches) alike; the positional
    features are cached per grid and device.

    Args:
        dim, num_heads, qkv_bias, attn_drop, proj_drop: as in :class:`Attention`.
        num_prefix_tokens: class (+ distillation) tokens in front of the patches.
        locality_strength: ``alpha`` of the convolutional initialisation; 0 starts as
            plain MHSA.
        init: 'local' puts head h's attention peak at the h-th offset of
            :func:`local_offsets` (the convolutional initialisation of Cordonnier et
            al.); 'zeros' starts every head without positional preference.
    """

    def __init__(self, dim, num_heads=8, qkv_bias=True, attn_drop=0., proj_drop=0.,
                 num_prefix_tokens=1, locality_strength=1.0, init='local'):
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        if init not in ('local', 'zeros'):
            raise ValueError(f"init must be 'local' or 'zeros', got {init!r}")
        self.num_prefix_tokens = num_prefix_tokens
        # A raw parameter (not nn.Linear) so that the students' generic Linear
        # initialisation leaves the convolutional initialisation alone.
        self.rel_pos_weight = nn.Parameter(torch.zeros(num_heads, REL_FEATURES))
        if init == 'local':
            self.reset_local(locality_strength)

    @torch.no_grad()
    def reset_local(self, locality_strength=1.0):
        """Head h peaks at offset Delta_h: v_h = alpha * (2 dx_h, 2 dy_h, -1)."""
        for h, (dx, dy) in enumerate(local_offsets(self.num_heads)):
            self.rel_pos_weight[h] = torch.tensor([2. * dx, 2. * dy, -1.]) * locality_strength

    def grid_of(self, num_tokens):
        n = num_tokens - self.num_prefix_tokens
        side = math.isqrt(max(n, 0))
        if n <= 0 or side * side != n:
            raise ValueError(f'MHCA needs a square patch grid: {num_tokens} tokens minus '
                             f'{self.num_prefix_tokens} prefix tokens is not a square')
        return side, side

    def position_bias(self, grid, device):
        """(heads, N, N) positional term of the patch tokens of ``grid``."""
        feats = relative_features(grid, str(device))
        return torch.einsum('ijf,hf->hij', feats, self.rel_pos_weight.float())

    def attention_bias(self, x):
        grid = self.grid_of(x.shape[1])
        bias = self.position_bias(grid, x.device)
        p = self.num_prefix_tokens
        # Zero rows/columns for the prefix tokens (see the class docstring).
        return F.pad(bias, (p, 0, p, 0)).unsqueeze(0)
