"""Hidden-layer losses: an aligned student feature map against a teacher's feature map.

Chen et al., "DearKD: Data-Efficient Early Knowledge Distillation for Vision
Transformers", CVPR 2022, section 3.1: L_hidden is the mean squared error between the
aligned student representation and the CNN teacher's intermediate representation. Its
arguments are bound to layers by a Distiller term (``inputs=dict(student_features=...,
teacher_features=...)``); any registered loss plugs in the same way.
"""
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS


@MODELS.register_module()
class HiddenMSELoss(nn.Module):
    """Mean over all elements of (aligned student - teacher)^2, in float32."""

    def forward(self, student_features, teacher_features):
        if student_features.shape != teacher_features.shape:
            raise ValueError(f'aligned student features {tuple(student_features.shape)} do '
                             f'not match the teacher features {tuple(teacher_features.shape)}; '
                             "set the aligner's teacher_channels to the teacher layer's width")
        return F.mse_loss(student_features.float(), teacher_features.float().detach())
