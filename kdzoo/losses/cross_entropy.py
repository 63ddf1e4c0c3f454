"""The base criterion: cross-entropy to the true labels."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS


@MODELS.register_module()
class LabelSmoothCrossEntropy(nn.Module):
    """Cross-entropy with label smoothing that accepts hard labels or mixed soft targets.

    Targets are class indices (N,) or, after mixup/cutmix, score vectors (N, K). Each is
    smoothed as t * (1 - eps) + eps / K, which equals smoothing the labels before mixing
    them, as timm's mixup does for DeiT.
    """

    def __init__(self, label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must be in [0, 1), got {label_smoothing}')
        self.label_smoothing = label_smoothing

    def forward(self, logits, target):
        num_classes = logits.shape[-1]
        if target.dim() == 1:
            target = F.one_hot(target, num_classes).to(logits.dtype)
        target = target * (1 - self.label_smoothing) + self.label_smoothing / num_classes
        return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
