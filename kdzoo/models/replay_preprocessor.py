"""mmpretrain's ClsDataPreprocessor, with mixup/cutmix drawn from the replay keys of the
batch (:mod:`kdzoo.datasets.replay`), so that a mixed training batch can be rebuilt
exactly by any number of processes, e.g. to record or check a teacher's outputs on it.
"""
import numpy as np
import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.models.utils.batch_augments import CutMix, Mixup

from kdzoo.datasets.replay import (BATCH_TAG, MIX_MODES, PAIR_TAG, replay_keys,
                                   seeded_global_rngs)
from kdzoo.registry import MODELS


class ReplayMix:
    """The mixing of a :class:`ReplayClsDataPreprocessor`: ``mode='pair'`` or ``'batch'``
    around mmpretrain's RandomBatchAugment ``augment``.

    * ``'pair'``: the samples at positions ``2q`` and ``2q + 1`` of the epoch's order mix
      with each other, with a choice of augment, ``lam`` and cutmix box drawn from
      (data seed, epoch, the two sample ids): ``x_a' = lam x_a + (1 - lam) x_b`` and
      ``x_b' = lam x_b + (1 - lam) x_a`` (cutmix: the same box, each filled from the
      other). Independent of the number of processes and of the per-process batch
      (which must keep pairs together, i.e. be even).
    * ``'batch'``: DeiT's (and mmpretrain's) per-batch mixing, one choice, ``lam`` and
      box for the process's batch and a random partner permutation within it, with the
      generators seeded by (data seed, epoch, the batch's first position). Replays at the
      same number of processes and per-process batch only.
    """

    def __init__(self, augment, mode):
        if mode not in MIX_MODES:
            raise ValueError(f'mix_mode must be one of {MIX_MODES}, got {mode!r}')
        self.augment = augment
        self.mode = mode
        for aug in augment.augments:
            if aug is not None and type(aug) not in (Mixup, CutMix):
                raise ValueError(f"mix_mode='pair' replays Mixup and CutMix, got "
                                 f"{type(aug).__name__}; use mix_mode='batch' for it")
            if isinstance(aug, CutMix) and aug.cutmix_minmax is not None and mode == 'pair':
                raise ValueError("mix_mode='pair' takes CutMix without cutmix_minmax")
        self.keys = None

    def __call__(self, inputs, scores):
        keys = self.keys
        if keys is None:
            raise RuntimeError(
                'ReplayClsDataPreprocessor mixes from the replay keys of the samples, and '
                "this training batch has none: set train_dataloader.sampler=dict(type="
                "'ReplaySampler'), or use ClsDataPreprocessor")
        if self.mode == 'batch':
            first = min(k[2] for k in keys)
            with seeded_global_rngs(keys[0][0], keys[0][1], first, BATCH_TAG):
                return self.augment(inputs, scores)
        return self.mix_pairs(inputs, scores.float(), keys)

    def pair_draws(self, key_a, key_b, shape):
        """(kind, lam, box) of one pair: kind None (not mixed), 'mixup' or 'cutmix'."""
        data_seed, epoch, _, id_a = key_a
        with seeded_global_rngs(data_seed, epoch, id_a, key_b[3], PAIR_TAG):
            augs = self.augment.augments
            aug = augs[np.random.choice(len(augs), p=self.augment.probs)]
            if aug is None:
                return None, 1.0, None
            lam = np.random.beta(aug.alpha, aug.alpha)
            if isinstance(aug, CutMix):
                box, lam = aug.cutmix_bbox_and_lam(shape, lam)
                return 'cutmix', float(lam), box
            return 'mixup', float(lam), None

    def mix_pairs(self, inputs, scores, keys):
        n = len(keys)
        for j in range(0, n, 2):
            a, b = keys[j], keys[j + 1] if j + 1 < n else None
            if (b is None or a[2] % 2 or b[2] != a[2] + 1 or a[:2] != b[:2]):
                raise ValueError(
                    "mix_mode='pair' needs each pair of the epoch's order (positions 2q, "
                    '2q+1) side by side in a batch: use an even per-process batch_size with '
                    f'ReplaySampler (batch of {n}, positions '
                    f'{[k[2] for k in keys[j:j + 2]]} at {j})')
        partner = torch.arange(n, device=inputs.device) ^ 1
        lam = torch.ones(n, dtype=scores.dtype, device=scores.device)
        mixup = torch.zeros(n, dtype=torch.bool)
        boxes = []
        for j in range(0, n, 2):
            kind, value, box = self.pair_draws(keys[j], keys[j + 1], inputs.shape[-2:])
            lam[j] = lam[j + 1] = value
            if kind == 'mixup':
                mixup[j] = mixup[j + 1] = True
            elif kind == 'cutmix':
                boxes.append((j, box))
        other = inputs[partner]
        out = inputs.clone()
        if mixup.any():
            idx = mixup.nonzero()[:, 0].to(inputs.device)
            w = lam[idx].to(inputs.dtype).view(-1, *([1] * (inputs.dim() - 1)))
            out[idx] = w * inputs[idx] + (1 - w) * other[idx]
        for j, (y1, y2, x1, x2) in boxes:
            out[j:j + 2, :, y1:y2, x1:x2] = other[j:j + 2, :, y1:y2, x1:x2]
        mixed_scores = lam[:, None] * scores + (1 - lam[:, None]) * scores[partner]
        return out, mixed_scores


@MODELS.register_module()
class ReplayClsDataPreprocessor(ClsDataPreprocessor):
    """ClsDataPreprocessor whose ``batch_augments`` (mixup/cutmix) are drawn from the
    replay keys of the batch: see :class:`ReplayMix` for ``mix_mode`` ('pair', default,
    independent of the number of processes; 'batch', DeiT's per-batch mixing). Without
    batch augments it is ClsDataPreprocessor. The training loader must use
    :class:`~kdzoo.datasets.replay.ReplaySampler`."""

    def __init__(self, *args, mix_mode='pair', **kwargs):
        super().__init__(*args, **kwargs)
        self.mix_mode = mix_mode
        if self.batch_augments is not None:
            self.batch_augments = ReplayMix(self.batch_augments, mix_mode)
        elif mix_mode not in MIX_MODES:
            raise ValueError(f'mix_mode must be one of {MIX_MODES}, got {mix_mode!r}')

    def forward(self, data, training=False):
        mix = self.batch_augments
        if not training or mix is None:
            return super().forward(data, training)
        mix.keys = replay_keys(data.get('data_samples'))
        try:
            return super().forward(data, training)
        finally:
            mix.keys = None
