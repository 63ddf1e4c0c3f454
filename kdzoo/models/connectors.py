"""Connectors between a network's layer and a distillation loss, and their sizes.

A connector is any registered module applied to one argument of a distillation term
(e.g. :class:`~kdzoo.models.aligner.Aligner` for transformer tokens). Constructor
arguments named in :data:`SIZE_ARGUMENTS` are filled in from the networks when the config
leaves them out, whatever the connector's type.
"""
import inspect

import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS

#: Constructor arguments filled in from the layers a connector joins.
SIZE_ARGUMENTS = {
    'student_channels': "the width of the connected layer's output",
    'in_channels': "the width of the connected layer's output",
    'teacher_channels': 'the width of the layer on the other network',
    'out_channels': 'the width of the layer on the other network',
    'num_prefix_tokens': "the connected network's num_prefix_tokens (0 if it has none)",
}


def channels(shape):
    """The channel count of a (B, C), (B, N, C) token or (B, C, H, W) map tensor shape."""
    if len(shape) == 3:
        return shape[-1]
    if len(shape) in (2, 4):
        return shape[1]
    raise ValueError(f'cannot tell the channels of a tensor of shape {tuple(shape)}')


def connector_class(cfg):
    kind = cfg.get('type')
    cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        raise KeyError(f'connector type {kind!r} is not registered in kdzoo (or mmpretrain)')
    return cls


def missing_sizes(cfg):
    """The size arguments that the connector's constructor takes and ``cfg`` leaves out."""
    params = inspect.signature(connector_class(cfg).__init__).parameters
    return [a for a in SIZE_ARGUMENTS if a in params and a not in cfg]


def fill_sizes(cfg, own_shape, other_shape, num_prefix_tokens):
    """A copy of ``cfg`` with its missing size arguments filled in.

    ``own_shape``: the shape of the connected layer's tensor; ``other_shape``: that of the
    layer on the other network (None when the term has none). For a connector on a list
    of layers both are lists of shapes, and the widths are filled in as lists.
    """
    def width(shape):
        return [channels(s) for s in shape] if isinstance(shape, list) else channels(shape)

    cfg = dict(cfg)
    for argument in missing_sizes(cfg):
        if argument in ('student_channels', 'in_channels'):
            cfg[argument] = width(own_shape)
        elif argument == 'num_prefix_tokens':
            cfg[argument] = num_prefix_tokens
        elif other_shape is None:
            raise ValueError(f'{cfg["type"]}: {argument} cannot be filled in, the term reads no '
                             'layer of the other network; give it in the connector config')
        else:
            cfg[argument] = width(other_shape)
    return cfg


@MODELS.register_module()
class ConvConnector(nn.Module):
    """(B, C_in, H, W) map -> (B, C_out, H_t, W_t) map: 1x1 convolution, BatchNorm and,
    optionally, ReLU; bilinear resizing to the other layer's size when it differs.

    The connector of FitNets-style hints for CNN students (Romero et al., "FitNets: Hints
    for Thin Deep Nets", ICLR 2015, use a regressor from the student's guided layer to the
    teacher's hint layer; a 1x1 convolution with BatchNorm is the common modern form).

    Args:
        in_channels: the student layer's width (filled in).
        out_channels: the teacher layer's width (filled in).
        relu: end with a ReLU (for targets that are post-activation maps).
    """

    def __init__(self, in_channels, out_channels, relu=False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x, size=None):
        if x.dim() != 4:
            raise ValueError(f'ConvConnector takes (B, C, H, W) maps, got shape {tuple(x.shape)}; '
                             'use Aligner for transformer tokens')
        x = self.act(self.bn(self.conv(x)))
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)
        return x
