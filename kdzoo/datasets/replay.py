"""The replayable training data path: every random decision of a sample is a function of
(data seed, epoch, sample id), and the order of an epoch is one global permutation dealt
to the processes, so the exact tensor a student sees at (epoch, position) can be rebuilt
anywhere, by any number of processes.

Three parts, each usable alone:

* :class:`ReplaySampler` draws the epoch's order from (data seed, epoch) and deals it to
  the ranks **by pairs** (pair ``q`` = positions ``2q`` and ``2q + 1``; rank ``r`` of ``W``
  takes pairs ``r, r + W, r + 2W, ...``). With a per-process batch ``B`` (even) the global
  step ``s`` then holds pairs ``[s*B*W/2, (s+1)*B*W/2)`` for every ``W``: 1, 2 or 8
  processes with the same global batch train on the same samples at every step.
* :class:`ReplayDataset` wraps any dataset: it seeds Python's, numpy's and torch's global
  generators from (data seed, epoch, sample id) around the pipeline of that sample (so
  RandomCrop, RandAugment, RandomErasing, ... replay without change), restores them after,
  and writes the sample's place in the run into its metainfo (``replay``: data seed,
  epoch, position, sample id). kdzoo's Runner wraps the training dataset in it when the
  sampler is a ReplaySampler (:func:`kdzoo.engine.config_check.prepare_config`).
* :class:`~kdzoo.models.replay_preprocessor.ReplayClsDataPreprocessor` mixes (mixup /
  cutmix) per pair, from the pair's two sample ids, or per batch as DeiT does.

TinyViT (Wu et al., ECCV 2022) stores per-sample seeds for the same purpose, inside its
own pipeline; here the seeding wraps whatever pipeline the config has.
"""
import random
from contextlib import contextmanager

import numpy as np
import torch
from mmengine.dataset import Compose
from torch.utils.data import Sampler

from kdzoo.registry import DATA_SAMPLERS, DATASETS
from .views import (SampleKey, check_view, make_views, seed_each_transform, size_step,
                    view_size)

#: Tags that keep the streams of one (data seed, epoch) apart.
ORDER_TAG, SAMPLE_TAG, PAIR_TAG, BATCH_TAG = 1, 2, 3, 4
MIX_MODES = ('pair', 'batch')


def seed_words(*keys):
    """Four 32-bit words drawn from the non-negative integers ``keys`` (numpy's
    SeedSequence: different keys give independent streams)."""
    return np.random.SeedSequence([int(k) for k in keys]).generate_state(4)


def generator(*keys):
    """A numpy Generator of its own for ``keys``."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


@contextmanager
def seeded_global_rngs(*keys):
    """Seed Python's ``random``, numpy's global and torch's CPU generator from ``keys``
    for the block, and give their states back after it (so the sample's draws are a
    function of the keys alone, and nothing else in the process sees them)."""
    words = seed_words(*keys)
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(int(words[0]))
    np.random.seed(int(words[1]))
    # The CPU generator alone: torch.manual_seed would also reseed every CUDA generator
    # (dropout, drop path on the GPU), which is not given back.
    torch.default_generator.manual_seed(int(words[2]) << 32 | int(words[3]))
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class EpochOrder:
    """The global order of one epoch: ``n`` sample ids, padded to an even count with the
    first id, read as ``pairs`` pairs (positions ``2q``, ``2q + 1``)."""

    def __init__(self, n, data_seed, epoch, shuffle=True):
        if n < 1:
            raise ValueError('the dataset is empty: a replayable order needs at least one '
                             'sample')
        ids = (generator(data_seed, epoch, ORDER_TAG).permutation(n) if shuffle
               else np.arange(n))
        if n % 2:
            ids = np.append(ids, ids[0])
        self.ids = ids
        self.pairs = len(ids) // 2

    def __len__(self):
        return len(self.ids)


def positions_of_rank(pairs, rank, world_size):
    """The positions rank ``rank`` of ``world_size`` reads, in order: its pairs
    ``rank, rank + W, ...`` of the order padded (by wrapping) to a multiple of ``W``
    pairs; a padded pair repeats pair ``q mod pairs`` at its positions."""
    padded = -(-pairs // world_size) * world_size
    q = np.arange(rank, padded, world_size) % pairs
    return np.stack([2 * q, 2 * q + 1], 1).reshape(-1)


@DATA_SAMPLERS.register_module()
class ReplaySampler(Sampler):
    """The order of an epoch as one global permutation of (data seed, epoch), dealt to the
    processes by pairs; it yields ``(data_seed, epoch, position, sample_id)`` keys, which
    :class:`ReplayDataset` turns into samples.

    Args:
        dataset: the (wrapped) training dataset.
        data_seed: the seed of the data stream: the order, every transform's draws and
            every mix. None (default): the run's seed (``randomness.seed``), so every
            seed of a sweep sees its own stream. Give a number to share one stream (and
            one teacher record) across runs: see README.md, "Offline teacher", for what
            that does to seed variance.
        shuffle: a new permutation each epoch (True) or the dataset order.
        seed: the run's seed, passed by mmengine's Runner.
    """

    def __init__(self, dataset, data_seed=None, shuffle=True, seed=None):
        from mmengine.dist import get_dist_info
        if data_seed is None:
            data_seed = 0 if seed is None else seed
        if (not isinstance(data_seed, (int, np.integer)) or isinstance(data_seed, bool)
                or data_seed < 0):
            raise ValueError(f'ReplaySampler: data_seed must be an integer >= 0, got '
                             f'{data_seed!r}')
        self.dataset = dataset
        self.data_seed = int(data_seed)
        self.shuffle = bool(shuffle)
        self.rank, self.world_size = get_dist_info()
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def order(self, epoch=None):
        return EpochOrder(len(self.dataset), self.data_seed,
                          self.epoch if epoch is None else epoch, self.shuffle)

    def __iter__(self):
        order = self.order()
        for position in positions_of_rank(order.pairs, self.rank, self.world_size):
            yield (self.data_seed, self.epoch, int(position), int(order.ids[position]))

    def __len__(self):
        # From the current world size: tools that replay one rank of a run set ``rank``
        # and ``world_size`` after construction.
        return 2 * -(-((len(self.dataset) + 1) // 2) // self.world_size)


@DATASETS.register_module()
class ReplayDataset:
    """Any dataset, its samples drawn as a function of (data seed, epoch, sample id).

    Indexed by the keys of :class:`ReplaySampler` (an int index reads the sample with
    the generators as they are, as the wrapped dataset would). Everything else (length,
    metainfo, ...) is the wrapped dataset's.

    With ``views`` ({name: dict(size=S)}) every sample also carries its views
    (``sample['views'][name]``), made from the same run of the pipeline
    (:mod:`kdzoo.datasets.views`).

    Args:
        dataset: the dataset or its config.
        views: {name: dict(size=S)}, the views of each training sample (None: none).
    """

    def __init__(self, dataset, views=None):
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        views = {name: check_view(spec, f'view {name!r}') for name, spec in
                 (views or {}).items()}
        #: {name: (height, width)} of the views at other sizes.
        self.views = {n: view_size(v, f'view {n!r}') for n, v in views.items() if 'size' in v}
        #: {name: Compose} of the views with pipelines of their own.
        self.pipelines = {n: seed_each_transform(Compose(v['pipeline']))
                          for n, v in views.items() if 'pipeline' in v}
        if self.views:
            size_step(self.dataset.pipeline)  # a clear error now rather than at a sample
        if self.pipelines:
            seed_each_transform(self.dataset.pipeline)
            own = type(getattr(self.dataset.pipeline.transforms[0], 'transform', None)).__name__
            for name, pipeline in self.pipelines.items():
                first = type(pipeline.transforms[0].transform).__name__
                if first != own:
                    raise ValueError(f'view {name!r}: its pipeline starts with {first}, the '
                                     f"training set's with {own}; a view pipeline loads the "
                                     'image as the training set does')

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):
        if name == 'dataset':  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.dataset[key]
        data_seed, epoch, position, sample_id = key
        SampleKey.current = (data_seed, epoch, sample_id) if self.pipelines else None
        try:
            with seeded_global_rngs(data_seed, epoch, sample_id, SAMPLE_TAG):
                if self.views:
                    sample, views = make_views(lambda: self.dataset[sample_id],
                                               self.dataset.pipeline, self.views)
                else:
                    sample, views = self.dataset[sample_id], {}
                for name, pipeline in self.pipelines.items():
                    views[name] = self._through(pipeline, sample_id)['inputs']
        finally:
            SampleKey.current = None
        if views:
            sample['views'] = views
        packed = sample.get('data_samples') if isinstance(sample, dict) else None
        if packed is None or not hasattr(packed, 'set_metainfo'):
            raise TypeError('ReplayDataset: the pipeline must end with PackInputs (a '
                            f'dict with data_samples), got {type(sample).__name__}')
        packed.set_metainfo(dict(replay=(int(data_seed), int(epoch), int(position),
                                         int(sample_id))))
        return sample

    def _through(self, pipeline, sample_id):
        """Sample ``sample_id`` through another pipeline (the dataset's own loading and
        caching, its pipeline swapped for the call)."""
        saved = _swap_pipeline(self.dataset, pipeline)
        try:
            return self.dataset[sample_id]
        finally:
            _swap_pipeline(self.dataset, saved)


def _swap_pipeline(dataset, pipeline):
    saved = dataset.pipeline
    dataset.pipeline = pipeline
    return saved


def replay_keys(data_samples):
    """``(data_seed, epoch, position, sample_id)`` of each sample of a batch, or None when
    the batch did not come through a ReplaySampler."""
    if not data_samples:
        return None
    keys = [s.metainfo.get('replay') if hasattr(s, 'metainfo') else None
            for s in data_samples]
    if any(k is None for k in keys):
        return None
    return [tuple(int(v) for v in k) for k in keys]
