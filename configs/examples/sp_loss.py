"""Similarity-preserving distillation as a user's own loss, outside the kdzoo package.

Tung and Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019, eqs. (1)-(4):
inputs that the teacher finds similar should be similar to the student too. Each
network's activations give a batch-by-batch similarity matrix G = A A^T (A: one row of
flattened activations per image), L2-normalised per row; the loss is
||G_s - G_t||_F^2 / b^2 for a batch of b. G has the same shape whatever the layers'
shapes, so a transformer's tokens and a CNN's feature map compare without a connector.
"""
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS


@MODELS.register_module()
class SimilarityPreservingLoss(nn.Module):
    """||G_s - G_t||_F^2 / b^2 between the row-normalised batch similarity matrices."""

    @staticmethod
    def similarity(features):
        a = features.float().flatten(1)
        return F.normalize(a @ a.t(), dim=1)

    def forward(self, student_features, teacher_features):
        b = student_features.shape[0]
        diff = self.similarity(student_features) - self.similarity(teacher_features.detach())
        return (diff ** 2).sum() / (b * b)
