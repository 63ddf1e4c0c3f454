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

kdzoo computes the positional term without an attention mask (see :meth:`MHCA.forward`):
``v_h . r(j - i)`` expands into a part of the key position alone, a part of the query
position alone and ``-2 v_h3 (p_i . p_j)``, a rank-4 bilinear form that four extra
query/key channels carry through the fused attention kernel (eight bf16 channels, each
part split in three, under bf16).
"""
import math
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vit_blocks import Attention, attention

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


_POSITIONS = {}


def centred_positions(grid, device='cpu'):
    """(N, 2) float positions (x, y) of the row-major patches of ``grid = (H, W)``,
    centred on the grid; cached per grid and device (a plain dict, which torch.compile
    reads as a constant)."""
    key = (tuple(grid), str(device))
    if key not in _POSITIONS:
        h, w = grid
        with torch.inference_mode(False):
            ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                                    torch.arange(w, device=device, dtype=torch.float32),
                                    indexing='ij')
            _POSITIONS[key] = torch.stack([xs.reshape(-1) - (w - 1) / 2,
                                           ys.reshape(-1) - (h - 1) / 2], -1)
    return _POSITIONS[key]


#: Extra query/key channels that carry the positional term.
POSITION_CHANNELS = 4
#: bf16 pieces per positional part under bf16 (:meth:`MHCA.split_position_channels`).
SPLIT_PIECES = 3


def split_bf16(t, pieces=SPLIT_PIECES):
    """bf16 tensors whose sum is float32 ``t`` to about 2^(-8 * pieces - 1) of it: the
    first is ``t`` rounded, each next one the rounded remainder.

    The gradient reaches ``t`` through the first piece alone: every piece meets the same
    factor on the other side of the dot product, so the gradient of each equals that of
    ``t``, and the first carries all of it (the remainders are roundings of ``t`` with no
    gradient of their own; giving them one would count the gradient several times)."""
    out = [t.to(torch.bfloat16)]
    rest = t.detach()
    for _ in range(pieces - 1):
        rest = rest - out[-1].detach().float()
        out.append(rest.to(torch.bfloat16))
    return out


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

    The positional term is carried by extra query/key channels (:meth:`position_channels`)
    so that ``scaled_dot_product_attention`` runs its fused kernels without an attention
    mask; the explicit (heads, N, N) term (:meth:`attention_bias`) stays available for
    analysis and as the reference the channels are tested against. With the positional
    weights zeroed the layer is MHSA with the same weights (up to float rounding).

    The expanded parts grow with the squared coordinates and cancel each other (the
    coordinates are centred on the grid to keep them small): rounded to bf16 they would
    be off by whole logits. Under bf16 (autocast) without a gradient for the positional
    weights (evaluation, a frozen teacher) the attention runs in the fused bf16 kernel with
    each part split into three exact bf16 channels (:meth:`split_position_channels`); bf16
    training (see :attr:`split_bf16_with_grad`), float32 and fp16 (whose range the split
    parts would leave) run a fused float32 kernel.

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

    #: Whether bf16 training (a gradient for ``rel_pos_weight``) also runs the split bf16
    #: kernel. Off: the forward is exact either way, but the weights' gradient passes
    #: through the bf16 gradients of the split channels (each rounded to 2^-9), and the
    #: parts' cancellation amplifies that by about |p|^2 / |offset|^2: measured 10-30% of
    #: the gradient at locality 1 (14x14, 24x24) and many times the gradient at locality
    #: 10, against 0.3-0.7% on the float32 kernel (tests/test_dearkd_mhca.py).
    #:
    #: Two other layouts were measured against the float64 gradient (locality 1, 14x14 /
    #: 24x24, 2 prefix tokens): the learned parts on the query side and the positions on
    #: the key side (so that a query's gradient channels sum over its own row of the
    #: softmax gradient, whose sum is zero) still gave 11% / 25%, because the prefix
    #: tokens' share of each row is not; positions centred on tiles of queries, one
    #: kernel call per tile, gave 1.3% / 1.5% with 4x4 tiles and 0.5% / 0.6% with 2x2
    #: tiles, at 1.7-3x the layer's time. On the AMD EPYC (AVX512-BF16, no AMX) of the
    #: speed tables the float32 kernel already costs what bf16 attention does (one
    #: DearKD-S layer, 8 x 198 tokens, fwd+bwd: 83 ms against 85-93 ms for plain bf16
    #: attention), so bf16 training keeps it.
    split_bf16_with_grad = False

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

    def position_channels(self, grid, device):
        """(query, key) channels, each (heads, prefix + N, 4), whose dot product is the
        positional term: with r = (dx, dy, dx^2 + dy^2) and centred positions p = (x, y),

            v . r(j - i) = g_j + c_i - 2 v_3 (p_i . p_j),
            g_j = v_1 x_j + v_2 y_j + v_3 |p_j|^2,   c_i = -v_1 x_i - v_2 y_i + v_3 |p_i|^2,

        so query i carries (1, c_i, x_i, y_i) and key j (g_j, 1, -2 v_3 x_j, -2 v_3 y_j);
        the prefix tokens carry zeros, so their term is exactly 0."""
        pos = centred_positions(grid, str(device))
        x, y = pos[:, 0], pos[:, 1]
        sq = (pos * pos).sum(-1)
        w = self.rel_pos_weight.float()
        v1, v2, v3 = w[:, 0:1], w[:, 1:2], w[:, 2:3]
        c = -v1 * x - v2 * y + v3 * sq
        g = v1 * x + v2 * y + v3 * sq
        ones = torch.ones_like(c)
        heads = w.shape[0]
        query = torch.stack([ones, c, x.expand(heads, -1), y.expand(heads, -1)], -1)
        key = torch.stack([g, ones, -2 * v3 * x, -2 * v3 * y], -1)
        p = self.num_prefix_tokens
        return F.pad(query, (0, 0, p, 0)), F.pad(key, (0, 0, p, 0))

    def split_position_channels(self, grid, device, scale):
        """bf16 (query, key) channels, each (heads, prefix + N, 4 * SPLIT_PIECES), whose
        dot product, times the kernel's ``scale``, is the positional term: the parts of
        :meth:`position_channels` with ``1 / scale`` on the key side (``g' = g / scale``,
        ``c' = c / scale``, ``a = -2 v_3 x_j / scale``, ``b = -2 v_3 y_j / scale``), each
        split into bf16 pieces that sum to it (``t_1 = bf16(t)``, ``t_2 = bf16(t - t_1)``,
        ...), every piece meeting the same exact factor on the other side:

            query i: (1, 1, 1, c'_1, c'_2, c'_3, x_i, x_i, x_i, y_i, y_i, y_i)
            key j:   (g'_1, g'_2, g'_3, 1, 1, 1, a_1, a_2, a_3, b_1, b_2, b_3)

        1 and the centred half-integer positions are exact in bf16, and the product of two
        bf16 numbers is exact in the float32 in which the kernels accumulate ``q . k``.
        Three pieces carry each part to 2^-24 of itself, as float32 would; rounded to bf16
        whole (2^-9), the cancelling parts (~ v_3 |p|^2 / scale) would put errors of whole
        logits into the term, and two pieces (2^-17) still a few hundredths of a logit at
        locality 10 on 24x24."""
        pos = centred_positions(grid, str(device))
        x, y = pos[:, 0], pos[:, 1]
        sq = (pos * pos).sum(-1)
        w = self.rel_pos_weight.float()
        v1, v2, v3 = w[:, 0:1], w[:, 1:2], w[:, 2:3]
        inv = 1.0 / scale
        g = (v1 * x + v2 * y + v3 * sq) * inv
        c = (-v1 * x - v2 * y + v3 * sq) * inv
        a, b = -2 * inv * v3 * x, -2 * inv * v3 * y
        one = torch.ones_like(g, dtype=torch.bfloat16)
        xb = x.to(torch.bfloat16).expand_as(one)
        yb = y.to(torch.bfloat16).expand_as(one)
        n = SPLIT_PIECES
        query = [one] * n + split_bf16(c) + [xb] * n + [yb] * n
        key = split_bf16(g) + [one] * n + split_bf16(a) + split_bf16(b)
        p = self.num_prefix_tokens
        return (F.pad(torch.stack(query, -1), (0, 0, p, 0)),
                F.pad(torch.stack(key, -1), (0, 0, p, 0)))

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv_heads(x)
        grid = self.grid_of(n)
        scale = self.head_dim ** -0.5
        needs_grad = torch.is_grad_enabled() and self.rel_pos_weight.requires_grad
        if q.dtype == torch.bfloat16 and (self.split_bf16_with_grad or not needs_grad):
            # bf16 (autocast or a bf16 model): the fused bf16 kernel, with the positional
            # term split into exact bf16 parts (see split_position_channels).
            pq, pk = self.split_position_channels(grid, x.device, scale)
            extra = pq.shape[-1]
        else:
            # float32, float16 (whose range the split parts would leave), and bf16 when the
            # positional weights are trained: a fused fp32 kernel. The query's extra
            # channels are divided by the kernel's scale, so that the scaled logits gain
            # exactly the positional term.
            pq, pk = self.position_channels(grid, x.device)
            pq, extra = pq / scale, POSITION_CHANNELS
            q, k, v = q.float(), k.float(), v.float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            # v is padded to the same head size, which the fused kernels require.
            q = torch.cat([q, pq.to(q.dtype).expand(b, -1, -1, -1)], dim=-1)
            k = torch.cat([k, pk.to(k.dtype).expand(b, -1, -1, -1)], dim=-1)
            v = F.pad(v, (0, extra))
            out = attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.,
                            scale=scale)
        out = out[..., :self.head_dim].to(x.dtype)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))
