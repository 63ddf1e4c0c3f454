"""DearKD students as timm models: ``timm.create_model('dearkd_tiny', ...)``.

timm cannot express MHCA, so the DearKD students are registered with timm's own machinery
(``register_model``, ``build_model_with_cfg``, ``generate_default_cfgs``) when kdzoo is
imported. A student exported with ``tools/export.py --to kdzoo`` then loads with

    timm.create_model('dearkd_tiny', img_size=32, patch_size=4, num_classes=10, ...,
                      pretrained=True, pretrained_cfg_overlay=dict(file='student.pth'))

No weights are published: ``pretrained=True`` needs a ``file`` in the overlay.
"""
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .dearkd import DearKD


def _cfg(**kwargs):
    # No 'classifier' entry: timm would drop a head whose class count differs from
    # num_classes below and load the rest; without it a mismatch is a strict load error.
    return dict(url='', num_classes=1000, input_size=(3, 224, 224), crop_pct=0.875,
                interpolation='bicubic', mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
                first_conv='patch_embed.proj', license='apache-2.0', **kwargs)


default_cfgs = generate_default_cfgs({
    'dearkd_tiny': _cfg(),
    'dearkd_small': _cfg(),
    'dearkd_base': _cfg(),
})


def _create(variant, arch, pretrained=False, **kwargs):
    # timm's file loader takes the 'state_dict' entry of a kdzoo export itself.
    return build_model_with_cfg(DearKD, variant, pretrained, arch=arch, **kwargs)


@register_model
def dearkd_tiny(pretrained=False, **kwargs):
    """DearKD-Ti (Chen et al., CVPR 2022): width 192, 12 heads, 8 MHCA + 4 MHSA blocks."""
    return _create('dearkd_tiny', 'tiny', pretrained, **kwargs)


@register_model
def dearkd_small(pretrained=False, **kwargs):
    """DearKD-S: width 384, 12 heads, 8 MHCA + 4 MHSA blocks."""
    return _create('dearkd_small', 'small', pretrained, **kwargs)


@register_model
def dearkd_base(pretrained=False, **kwargs):
    """DearKD-B: width 768, 16 heads, 8 MHCA + 4 MHSA blocks."""
    return _create('dearkd_base', 'base', pretrained, **kwargs)
