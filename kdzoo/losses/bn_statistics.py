"""Feature-distribution regulariser of DeepInversion: batch statistics against the
running statistics stored in a network's BatchNorm layers.

Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion",
CVPR 2020, section 3.2 (R_feature); used as R_BN by DF-DearKD (Chen et al., "DearKD",
CVPR 2022, section 4).
"""
from contextlib import contextmanager

import torch
import torch.nn as nn

from kdzoo.registry import MODELS


def batchnorm_layers(network):
    """(name, module) of every 2-d BatchNorm of ``network`` in registration order, which
    for feed-forward CNNs (CifarResNet, timm's RegNet) is also the order of execution."""
    return [(n, m) for n, m in network.named_modules()
            if isinstance(m, nn.BatchNorm2d) and m.track_running_stats
            and m.running_mean is not None]


def batch_statistics_distance(x, running_mean, running_var):
    """||mean_c(x) - running_mean||_2 + ||var_c(x) - running_var||_2 for a (N, C, H, W)
    batch, with the biased per-channel variance over N, H and W (what BatchNorm
    normalises a training batch with)."""
    x = x.float()
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=False)
    return (torch.linalg.vector_norm(mean - running_mean.float())
            + torch.linalg.vector_norm(var - running_var.float()))


@MODELS.register_module()
class BNStatisticsLoss(nn.Module):
    """sum_l w_l (||mu_l(x) - mu_l^run||_2 + ||sigma^2_l(x) - sigma^2_l^run||_2) over the
    BatchNorm layers l of a network, with w = ``first_bn_multiplier`` for the first layer
    and 1 for the others (a larger first weight, as in DeepInversion, because the stem's
    statistics are those of nearly raw pixels and shape colours and contrast most).

    Forward hooks on the BatchNorm layers compute each layer's term from its input during
    the network's forward; calling the loss afterwards returns their weighted sum (a
    differentiable scalar) and forgets them, so no activation stays referenced. Usage::

        bn_loss = BNStatisticsLoss(first_bn_multiplier=10.0)
        with bn_loss.attached(network):
            network(images)
            loss = bn_loss()

    ``attach``/``remove`` do the same without a ``with`` block. A layer run twice before
    the loss is read counts once, with its last input.
    """

    def __init__(self, first_bn_multiplier=10.0):
        super().__init__()
        if first_bn_multiplier < 0:
            raise ValueError(f'first_bn_multiplier must be >= 0, got {first_bn_multiplier}')
        self.first_bn_multiplier = float(first_bn_multiplier)
        self._handles = []
        self._terms = {}
        self.layer_names = []

    def attach(self, network):
        """Hook every BatchNorm2d of ``network``; raises if it has none."""
        if self._handles:
            raise RuntimeError('BNStatisticsLoss is already attached; remove() it first')
        layers = batchnorm_layers(network)
        if not layers:
            raise ValueError(f'{type(network).__name__} has no BatchNorm2d layer with running '
                             'statistics; the BN-statistics loss needs one')
        self.layer_names = [n for n, _ in layers]
        for index, (_, module) in enumerate(layers):
            self._handles.append(module.register_forward_hook(self._hook(index)))
        return self

    def _hook(self, index):
        def hook(module, inputs, output):
            self._terms[index] = batch_statistics_distance(
                inputs[0], module.running_mean, module.running_var)
        return hook

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._terms = {}

    @contextmanager
    def attached(self, network):
        """Hooks on ``network`` for the duration of the ``with`` block."""
        self.attach(network)
        try:
            yield self
        finally:
            self.remove()

    def layer_terms(self):
        """The unweighted per-layer terms of the last forward, by layer index."""
        return dict(self._terms)

    def forward(self):
        if not self._terms:
            raise RuntimeError('no BatchNorm statistics recorded: attach the loss to the '
                               'network and run a forward before reading it')
        total = sum(t * (self.first_bn_multiplier if i == 0 else 1.0)
                    for i, t in self._terms.items())
        self._terms = {}
        return total
