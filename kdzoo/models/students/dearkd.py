"""DearKD students: DeiT with MHCA in the early blocks.

Chen et al., "DearKD: Data-Efficient Early Knowledge Distillation for Vision
Transformers", CVPR 2022, section 5.1: DearKD-Ti/S/B keep DeiT-Ti/S/B's widths but use
12, 12 and 16 heads (more heads give the convolutional-attention more kernel offsets), and
stack 8 MHCA blocks followed by 4 MHSA blocks, on 16x16 patches at 224 with a
distillation token.
"""
from functools import partial

from kdzoo.registry import MODELS
from .deit import DeiT
from .mhca import MHCA

#: Widths and head counts of the paper's models; depth 12, the first 8 blocks MHCA.
DEARKD_ARCHS = {
    'tiny': dict(embed_dim=192, num_heads=12),
    'small': dict(embed_dim=384, num_heads=12),
    'base': dict(embed_dim=768, num_heads=16),
}


@MODELS.register_module()
class DearKD(DeiT):
    """A DeiT whose first ``num_mhca_blocks`` blocks use :class:`MHCA` attention.

    Args:
        arch: 'tiny', 'small' or 'base' (DearKD-Ti/S/B), or None to give ``embed_dim``
            and ``num_heads`` directly (e.g. small CIFAR students).
        num_mhca_blocks: how many of the first blocks are MHCA; the rest are MHSA.
        locality_strength, mhca_init: the convolutional initialisation of the positional
            term (see :class:`MHCA`).
        Other arguments are those of :class:`DeiT`; ``distilled`` defaults to True.
    """

    def __init__(self, arch='tiny', distilled=True, embed_dim=None, num_heads=None,
                 depth=12, num_mhca_blocks=8, locality_strength=1.0, mhca_init='local',
                 **kwargs):
        if arch is not None:
            if arch not in DEARKD_ARCHS:
                raise ValueError(f'unknown DearKD arch {arch!r}; choose one of '
                                 f'{sorted(DEARKD_ARCHS)} or None with embed_dim/num_heads')
            embed_dim = embed_dim or DEARKD_ARCHS[arch]['embed_dim']
            num_heads = num_heads or DEARKD_ARCHS[arch]['num_heads']
        if not 0 <= num_mhca_blocks <= depth:
            raise ValueError(f'num_mhca_blocks must be in [0, depth={depth}], '
                             f'got {num_mhca_blocks}')
        # Read by block_attn_layer while DeiT.__init__ builds the blocks.
        self.num_mhca_blocks = num_mhca_blocks
        self.locality_strength = locality_strength
        self.mhca_init = mhca_init
        super().__init__(arch=None, distilled=distilled, embed_dim=embed_dim,
                         num_heads=num_heads, depth=depth, **kwargs)

    def block_attn_layer(self, index):
        if index < self.num_mhca_blocks:
            return partial(MHCA, num_prefix_tokens=self.num_prefix_tokens,
                           locality_strength=self.locality_strength, init=self.mhca_init)
        return self.attn_layer
