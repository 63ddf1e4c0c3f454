"""DeiT students.

Touvron et al., "Training data-efficient image transformers & distillation through
attention", ICML 2021. A ViT with an optional distillation token: the class token learns
from the labels, the distillation token from the teacher, and at test time the two heads
are combined (the joint classifier, the mean of the two heads' logits as in the official
code).
"""
import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from kdzoo.registry import MODELS
from ..checkpoint import load_state_dict_file
from .vit_blocks import Attention, Block, PatchEmbed, resize_pos_embed

#: Widths of the paper's models (Table 1); depth 12 and 16x16 patches for all.
DEIT_ARCHS = {
    'tiny': dict(embed_dim=192, num_heads=3),
    'small': dict(embed_dim=384, num_heads=6),
    'base': dict(embed_dim=768, num_heads=12),
}


@MODELS.register_module()
class DeiT(nn.Module):
    """Vision transformer with an optional distillation token.

    Args:
        arch: 'tiny', 'small' or 'base' (the paper's widths), or None to give
            ``embed_dim`` and ``num_heads`` directly (e.g. small CIFAR students).
        distilled: add the distillation token and its head (DeiT-distilled).
        img_size, patch_size, depth, mlp_ratio: the usual ViT geometry.
        drop_path_rate: stochastic depth, linearly increasing over the blocks.
        pretrained: weights to start from (kdzoo, timm or official DeiT checkpoint); the
            position embedding is resized when the resolution differs.
    """

    attn_layer = Attention

    def __init__(self, arch='tiny', distilled=True, img_size=224, patch_size=16, in_chans=3,
                 num_classes=1000, embed_dim=None, depth=12, num_heads=None, mlp_ratio=4.,
                 qkv_bias=True, drop_rate=0., attn_drop_rate=0., drop_path_rate=0.,
                 pretrained=None):
        super().__init__()
        if arch is not None:
            if arch not in DEIT_ARCHS:
                raise ValueError(f'unknown DeiT arch {arch!r}; choose one of '
                                 f'{sorted(DEIT_ARCHS)} or None with embed_dim/num_heads')
            embed_dim = embed_dim or DEIT_ARCHS[arch]['embed_dim']
            num_heads = num_heads or DEIT_ARCHS[arch]['num_heads']
        if embed_dim is None or num_heads is None:
            raise ValueError('arch=None needs embed_dim and num_heads')
        self.num_classes = num_classes
        self.distilled = distilled
        self.embed_dim = embed_dim
        self.num_prefix_tokens = 2 if distilled else 1

        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distilled else None
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.patch_embed.num_patches + self.num_prefix_tokens, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.Sequential(*[
            Block(embed_dim, self.block_heads(i, num_heads), mlp_ratio, qkv_bias, drop_rate,
                  attn_drop_rate, rates[i], attn_layer=self.block_attn_layer(i))
            for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        self.head_dist = nn.Linear(embed_dim, num_classes) if distilled else None
        self._init_weights()
        self._register_load_state_dict_pre_hook(self._resize_pos_embed_hook)
        if pretrained is not None:
            self.load_state_dict(load_state_dict_file(pretrained))

    # Hooks for subclasses (e.g. DearKD's MHCA blocks) to vary blocks by depth.
    def block_heads(self, index, num_heads):
        return num_heads

    def block_attn_layer(self, index):
        return self.attn_layer

    def _init_weights(self):
        trunc_normal_(self.pos_embed, std=.02)
        trunc_normal_(self.cls_token, std=.02)
        if self.dist_token is not None:
            trunc_normal_(self.dist_token, std=.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _resize_pos_embed_hook(self, state_dict, prefix, *args):
        key = prefix + 'pos_embed'
        if key in state_dict and state_dict[key].shape != self.pos_embed.shape:
            state_dict[key] = resize_pos_embed(state_dict[key], self.num_prefix_tokens,
                                               self.patch_embed.grid_size)

    @property
    def grid_size(self):
        return self.patch_embed.grid_size

    def forward_features(self, x):
        """Token sequence after the final norm: prefix tokens first, then the patches."""
        x = self.patch_embed(x)
        prefix = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.dist_token is not None:
            prefix.append(self.dist_token.expand(x.shape[0], -1, -1))
        x = torch.cat(prefix + [x], dim=1) + self.pos_embed
        x = self.blocks(self.pos_drop(x))
        return self.norm(x)

    def forward_heads(self, x):
        """(class-token logits, distillation-token logits or None)."""
        x = self.forward_features(x)
        cls_logits = self.head(x[:, 0])
        dist_logits = self.head_dist(x[:, 1]) if self.distilled else None
        return cls_logits, dist_logits

    def forward(self, x):
        """Class and distillation logits in training; the joint classifier otherwise."""
        cls_logits, dist_logits = self.forward_heads(x)
        if dist_logits is None:
            return cls_logits
        if self.training:
            return cls_logits, dist_logits
        return (cls_logits + dist_logits) / 2
