"""Transformer building blocks shared by kdzoo's students.

Parameter names follow timm's vision transformer so that timm checkpoints load as they are.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath
from torch.nn.attention import SDPBackend, sdpa_kernel

#: Up to this many tokens, bf16 attention on the CPU runs torch's math kernel instead of
#: its flash kernel: for short sequences the CPU flash kernel's bf16 backward is slow
#: (measured on an AMD EPYC with AVX512-BF16, 1 thread, fwd+bwd of 128 x 4 heads x 65
#: tokens x 32 channels: 49.6 ms flash, 19.6 ms math; a CIFAR micro DeiT train step 0.46
#: -> 0.31 s at batch 128, 2 threads), while from about 200 tokens the two are even
#: (8 x 6 heads x 198 x 64: 21.9 / 17.8 ms; 8 x 12 x 198 x 32: 27.1 / 30.4 ms). float32 and
#: GPUs keep torch's own choice.
CPU_BF16_MATH_MAX_TOKENS = 128


def attention(q, k, v, **kwargs):
    """``F.scaled_dot_product_attention(q, k, v, **kwargs)`` on the kernel that is fastest
    for it: torch's math kernel for bf16 on the CPU up to :data:`CPU_BF16_MATH_MAX_TOKENS`
    query/key tokens, torch's own choice otherwise."""
    if (q.device.type == 'cpu' and q.dtype == torch.bfloat16
            and max(q.shape[-2], k.shape[-2]) <= CPU_BF16_MATH_MAX_TOKENS):
        with sdpa_kernel([SDPBackend.MATH]):
            return F.scaled_dot_product_attention(q, k, v, **kwargs)
    return F.scaled_dot_product_attention(q, k, v, **kwargs)


class PatchEmbed(nn.Module):
    """Split an image into non-overlapping patches and project each to ``embed_dim``."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f'img_size {img_size} is not a multiple of patch_size {patch_size}')
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        h, w = x.shape[-2:]
        if (h, w) != (self.img_size, self.img_size):
            raise ValueError(f'input size {h}x{w} does not match the model ({self.img_size}x'
                             f'{self.img_size}); resize the input or build the model with '
                             f'img_size={h}')
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """Two linear layers with GELU, as in ViT."""

    def __init__(self, dim, hidden_dim, drop=0.):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention (MHSA) on torch's fused scaled_dot_product_attention.

    ``attn_bias`` (broadcastable to B x heads x N x N) is added to the attention logits;
    subclasses such as DearKD's MHCA use it for their positional term.
    """

    def __init__(self, dim, num_heads=8, qkv_bias=True, attn_drop=0., proj_drop=0.):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def qkv_heads(self, x):
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def attention_bias(self, x):
        """Additive attention bias for input ``x``; None for plain MHSA."""
        return None

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv_heads(x)
        bias = self.attention_bias(x)
        if bias is not None:
            bias = bias.to(q.dtype)
        x = attention(q, k, v, attn_mask=bias,
                      dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=True, drop=0., attn_drop=0.,
                 drop_path=0., attn_layer=Attention):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn_layer(dim, num_heads=num_heads, qkv_bias=qkv_bias,
                               attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def resize_pos_embed(pos_embed, num_prefix_tokens, new_grid):
    """Bicubically resize the patch part of a position embedding to ``new_grid``.

    Used when a checkpoint trained at one resolution is loaded at another (DeiT's 384
    fine-tuning, or a teacher/student pair at different sizes).
    """
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    old = int(round(grid.shape[1] ** 0.5))
    if old * old != grid.shape[1]:
        raise ValueError(f'cannot resize a non-square position grid of {grid.shape[1]} tokens')
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_grid, mode='bicubic', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1)
    return torch.cat([prefix, grid.to(pos_embed.dtype)], dim=1)
