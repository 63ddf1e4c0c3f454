"""Boundary-preserving intra-divergence loss of DF-DearKD.

Chen et al., "DearKD: Data-Efficient Early Knowledge Distillation for Vision
Transformers", CVPR 2022, section 4. DeepInversion (Yin et al., CVPR 2020) images of one
class tend to collapse onto a few modes of the teacher's embedding. For each anchor x_a of
a synthesised batch, in the teacher's feature space (Euclidean distance d):

- easy positive x_ep: the closest sample of the same class;
- hard positive x_hp: the farthest sample of the same class;
- hard negative x_hn: the closest sample of another class.

L_ep pushes x_a and x_ep apart (intra-class diversity); L_triplet = max(0, d(a, hp) -
d(a, hn) + margin) keeps the spread inside the class boundary. The loss is
alpha_ep * L_ep + alpha_triplet * L_triplet, with alpha_ep = 50 and alpha_triplet = 0.5 in
the paper.
"""
from collections import namedtuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS

#: Indices into the batch. ``anchor``, ``easy_positive`` and ``hard_positive`` list the
#: anchors that have a same-class partner; ``hard_negative`` is -1 where an anchor has no
#: sample of another class in the batch.
Triplets = namedtuple('Triplets', 'anchor easy_positive hard_positive hard_negative')

EP_FORMS = ('negative', 'inverse')
MARGIN_MODES = ('absolute', 'spread')


def pairwise_distances(features):
    """(B, B) Euclidean distances between the rows of ``features`` (B, D)."""
    return torch.cdist(features.float(), features.float())


@torch.no_grad()
def mine_triplets(features, labels):
    """Easy positive, hard positive and hard negative of every anchor, as :data:`Triplets`.

    Anchors without a same-class partner in the batch are left out; ties go to the lowest
    index.
    """
    if features.dim() != 2 or labels.dim() != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(f'features must be (B, D) and labels (B,), got '
                         f'{tuple(features.shape)} and {tuple(labels.shape)}')
    dist = pairwise_distances(features)
    same = labels[:, None] == labels[None, :]
    self_pair = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = same & ~self_pair
    negative = ~same
    inf = torch.tensor(float('inf'), device=dist.device)
    easy_positive = torch.where(positive, dist, inf).argmin(dim=1)
    hard_positive = torch.where(positive, dist, -inf).argmax(dim=1)
    hard_negative = torch.where(negative, dist, inf).argmin(dim=1)
    hard_negative[~negative.any(dim=1)] = -1
    has_positive = positive.any(dim=1)
    anchor = torch.nonzero(has_positive).flatten()
    return Triplets(anchor, easy_positive[anchor], hard_positive[anchor],
                    hard_negative[anchor])


@torch.no_grad()
def class_spread(features, labels):
    """(B,) the mean pairwise distance between the samples of each sample's class in the
    batch (0 for a class with one sample)."""
    dist = pairwise_distances(features)
    same = (labels[:, None] == labels[None, :]).float()
    pairs = same.sum(dim=1) - 1
    return (dist * same).sum(dim=1).div(pairs.clamp(min=1)) * (pairs > 0)


def _distance(a, b, eps=1e-12):
    # sqrt with a floor: the gradient of a norm at a zero difference (duplicate images)
    # would otherwise be NaN.
    return torch.sqrt(((a - b) ** 2).sum(dim=1) + eps)


@MODELS.register_module()
class IntraDivergenceLoss(nn.Module):
    """alpha_ep * L_ep + alpha_triplet * L_triplet on a batch of features and class labels.

    Args:
        alpha_ep, alpha_triplet: weights of the two terms (paper: 50 and 0.5).
        margin: triplet margin, in the units of the features (normalised or not).
        ep_form: how L_ep "maximises the distance" to the easy positive, which the paper
            states in words only:

            - ``'inverse'`` (default): mean over anchors of 1 / (1 + d(a, ep)), bounded in
              (0, 1]. Its push is strongest for near-duplicates and fades as samples
              separate, so alpha_ep = 50 diversifies without overriding the
              cross-entropy (see configs/dearkd/README.md for a measurement).
            - ``'negative'``: mean of -d(a, ep), the literal reading. Its push never fades
              (unbounded for raw features) and at alpha_ep = 50 it can override the
              cross-entropy, so that images leave their target class.
        normalize: L2-normalise the features first (distances in [0, 2], so margin and
            alpha_ep mean the same for every teacher). Off by default: the paper measures
            the raw embedding.
        margin_mode: ``'absolute'`` (default, the paper): ``margin`` in feature units;
            ``'spread'``: ``margin`` times the anchor's class spread in the batch (the mean
            distance between two samples of its class, without gradient), so the margin
            grows as L_ep spreads the class out instead of being a constant the spread
            soon exceeds (kdzoo's addition; measured in configs/dearkd/README.md).

    Anchors without a same-class partner contribute to neither term; anchors whose batch
    has no other class contribute to L_ep only. With no anchor at all the loss is 0.
    """

    def __init__(self, alpha_ep=50.0, alpha_triplet=0.5, margin=1.0, ep_form='inverse',
                 normalize=False, margin_mode='absolute'):
        super().__init__()
        if ep_form not in EP_FORMS:
            raise ValueError(f'ep_form must be one of {EP_FORMS}, got {ep_form!r}')
        if margin_mode not in MARGIN_MODES:
            raise ValueError(f'margin_mode must be one of {MARGIN_MODES}, got {margin_mode!r}')
        if margin < 0 or alpha_ep < 0 or alpha_triplet < 0:
            raise ValueError('alpha_ep, alpha_triplet and margin must be >= 0')
        self.alpha_ep = alpha_ep
        self.alpha_triplet = alpha_triplet
        self.margin = margin
        self.ep_form = ep_form
        self.normalize = normalize
        self.margin_mode = margin_mode

    def embed(self, features):
        features = features.flatten(1).float()
        return F.normalize(features, dim=1) if self.normalize else features

    def terms(self, features, labels):
        """(L_ep, L_triplet, triplets) before weighting."""
        z = self.embed(features)
        triplets = mine_triplets(z, labels)
        zero = z.sum() * 0.0  # keeps the graph (and the device) when no anchor qualifies
        if len(triplets.anchor) == 0:
            return zero, zero, triplets
        a = z[triplets.anchor]
        d_ep = _distance(a, z[triplets.easy_positive])
        l_ep = -d_ep.mean() if self.ep_form == 'negative' else (1.0 / (1.0 + d_ep)).mean()
        has_negative = triplets.hard_negative >= 0
        if not has_negative.any():
            return l_ep, zero, triplets
        margin = self.margin
        if self.margin_mode == 'spread':
            margin = margin * class_spread(z, labels)[triplets.anchor[has_negative]]
        a = a[has_negative]
        d_ap = _distance(a, z[triplets.hard_positive[has_negative]])
        d_an = _distance(a, z[triplets.hard_negative[has_negative]])
        l_triplet = F.relu(d_ap - d_an + margin).mean()
        return l_ep, l_triplet, triplets

    def forward(self, features, labels):
        l_ep, l_triplet, _ = self.terms(features, labels)
        return self.alpha_ep * l_ep + self.alpha_triplet * l_triplet
