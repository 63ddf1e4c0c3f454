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
        draws = [(j, *self.pair_draws(keys[j], keys[j + 1], inputs.shape[-2:]))
                 for j in range(0, n, 2)]
        self.last_draws = (draws, tuple(inputs.shape[-2:]))
        lam = torch.ones(n, dtype=scores.dtype, device=scores.device)
        for j, _, value, _ in draws:
            lam[j] = lam[j + 1] = value
        partner = torch.arange(n, device=scores.device) ^ 1
        mixed_scores = lam[:, None] * scores + (1 - lam[:, None]) * scores[partner]
        return self.apply_draws(inputs), mixed_scores

    def apply_draws(self, inputs):
        """``inputs`` mixed by the pairs' draws of the last batch: the same ``lam`` and,
        for cutmix, the same box scaled to ``inputs``' size (a view of the batch at
        another resolution mixes exactly as the batch did)."""
        draws, shape = self.last_draws
        n = inputs.shape[0]
        partner = torch.arange(n, device=inputs.device) ^ 1
        other = inputs[partner]
        out = inputs.clone()
        mixup = [j for j, kind, _, _ in draws if kind == 'mixup']
        if mixup:
            idx = torch.tensor([i for j in mixup for i in (j, j + 1)], device=inputs.device)
            lam = torch.tensor([v for j, kind, v, _ in draws if kind == 'mixup'
                                for _ in range(2)], dtype=inputs.dtype, device=inputs.device)
            w = lam.view(-1, *([1] * (inputs.dim() - 1)))
            out[idx] = w * inputs[idx] + (1 - w) * other[idx]
        sy, sx = inputs.shape[-2] / shape[0], inputs.shape[-1] / shape[1]
        for j, kind, _, box in draws:
            if kind == 'cutmix':
                y1, y2, x1, x2 = box
                y1, y2, x1, x2 = (round(y1 * sy), round(y2 * sy), round(x1 * sx),
                                  round(x2 * sx))
                out[j:j + 2, :, y1:y2, x1:x2] = other[j:j + 2, :, y1:y2, x1:x2]
        return out


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
        """The batch, as ClsDataPreprocessor makes it; with ``views`` in the data
        (:mod:`kdzoo.datasets.views`), each view normalised like the inputs and mixed with
        the batch's own pairs, ``lam`` and boxes, under ``views`` in the result."""
        mix = self.batch_augments
        views = data.get('views') if training else None
        if views and mix is not None and mix.mode != 'pair':
            raise ValueError("views are mixed with the batch's own pairs: they need "
                             "mix_mode='pair' (the default), not 'batch'")
        if not training or mix is None:
            out = super().forward(data, training)
        else:
            mix.keys = replay_keys(data.get('data_samples'))
            try:
                out = super().forward(data, training)
            finally:
                mix.keys = None
        if views:
            out['views'] = {name: self.view_batch(view, mix) for name, view in views.items()}
        return out

    def view_batch(self, view, mix):
        """A view of the batch: stacked, on the device, channels as the inputs', normalised
        and mixed as the batch was."""
        view = self.cast_data(torch.stack(view) if isinstance(view, (list, tuple)) else view)
        if self.to_rgb and view.size(1) == 3:
            view = view.flip(1)
        view = view.float()
        if self._enable_normalize:
            view = (view - self.mean) / self.std
        return mix.apply_draws(view) if mix is not None else view
