"""Image priors of DeepInversion: total variation and the L2 norm of the image.

Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion",
CVPR 2020, section 3.1 (R_prior = alpha_tv R_TV + alpha_l2 R_l2); the R_prior of DF-DearKD
(Chen et al., "DearKD", CVPR 2022, section 4) with alpha_TV = 1e-4 and alpha_l2 = 1e-5.
"""
import torch
import torch.nn as nn

from kdzoo.registry import MODELS


def _neighbour_differences(x):
    # Vertical and horizontal differences of neighbouring pixels, per channel.
    return x[:, :, 1:, :] - x[:, :, :-1, :], x[:, :, :, 1:] - x[:, :, :, :-1]


def total_variation_l2(x):
    """Per image: ||x[i+1, j] - x[i, j]||_2 + ||x[i, j+1] - x[i, j]||_2, the Euclidean norms
    of the vertical and of the horizontal neighbour differences over all channels."""
    dh, dw = _neighbour_differences(x.float())
    return dh.flatten(1).norm(dim=1) + dw.flatten(1).norm(dim=1)


def total_variation_l1(x):
    """Per image: mean |x[i+1, j] - x[i, j]| + mean |x[i, j+1] - x[i, j]| (a size-independent
    L1 total variation that penalises isolated spikes less than the L2 form)."""
    dh, dw = _neighbour_differences(x.float())
    return dh.abs().flatten(1).mean(dim=1) + dw.abs().flatten(1).mean(dim=1)


def image_l2_norm(x):
    """Per image: ||x||_2 over all channels and pixels."""
    return x.float().flatten(1).norm(dim=1)


@MODELS.register_module()
class ImagePriorLoss(nn.Module):
    """tv_l2_weight * TV_L2(x) + tv_l1_weight * TV_L1(x) + l2_weight * ||x||_2 per image.

    Applied to images in the network's normalised input space, where the BatchNorm
    statistics and the classifier live too. Returns a (B,) tensor; the caller averages.
    """

    def __init__(self, tv_l2_weight=1e-4, tv_l1_weight=0.0, l2_weight=1e-5):
        super().__init__()
        for name, w in (('tv_l2_weight', tv_l2_weight), ('tv_l1_weight', tv_l1_weight),
                        ('l2_weight', l2_weight)):
            if w < 0:
                raise ValueError(f'{name} must be >= 0, got {w}')
        self.tv_l2_weight = tv_l2_weight
        self.tv_l1_weight = tv_l1_weight
        self.l2_weight = l2_weight

    def forward(self, x):
        out = torch.zeros(x.shape[0], device=x.device)
        if self.tv_l2_weight:
            out = out + self.tv_l2_weight * total_variation_l2(x)
        if self.tv_l1_weight:
            out = out + self.tv_l1_weight * total_variation_l1(x)
        if self.l2_weight:
            out = out + self.l2_weight * image_l2_norm(x)
        return out
