"""ImageFolderSubset's decoded-image cache and the CIFAR-10 loaders' batch stacking are
speed only: the same samples, augmentation randomness included, and the same model inputs
as without them."""
import os
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate, pseudo_collate

from conftest import CONFIGS, make_small_copy
from kdzoo.datasets.replay import ReplayDataset
from kdzoo.registry import DATASETS, MODELS

CIFAR_BASE = osp.join(CONFIGS, '_base_', 'datasets', 'cifar10_deit.py')


def train_dataset_cfg(data_root, **kw):
    """The shipped CIFAR-10 training set (DeiT's augmentations, RandAugment included) at
    ``data_root``; RandomErasing always on, so a transform writes into every image."""
    cfg = Config.fromfile(CIFAR_BASE)
    dataset = cfg.train_dataloader.dataset.to_dict()
    dataset['pipeline'][-2]['erase_prob'] = 1.0  # RandomErasing
    dataset.update(data_root=data_root, **kw)
    return dataset


def sweep(dataset, order, seed=0):
    """Every sample of ``order`` (indices, repeats allowed) after seeding every RNG that a
    transform may draw from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return [dataset[i] for i in order]


def assert_same_samples(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x['inputs'].dtype == y['inputs'].dtype == torch.uint8
        assert torch.equal(x['inputs'], y['inputs'])
        assert torch.equal(x['data_samples'].gt_label, y['data_samples'].gt_label)
        assert x['data_samples'].img_path == y['data_samples'].img_path
        assert x['data_samples'].ori_shape == y['data_samples'].ori_shape


@pytest.mark.parametrize('pipeline', ['shipped', 'erasing_first'])
def test_cached_samples_are_those_of_the_files(cifar_tiny, tmp_path, pipeline):
    data = make_small_copy(cifar_tiny, str(tmp_path / 'data'), n_train=3, n_test=1)
    cfgs = [train_dataset_cfg(data, cache_decoded=cache) for cache in (False, True)]
    if pipeline == 'erasing_first':  # writes into the loaded array itself
        for cfg in cfgs:
            cfg['pipeline'] = [cfg['pipeline'][i] for i in (0, -2, -1)]
    plain, cached = map(DATASETS.build, cfgs)
    order = list(range(len(plain))) * 2  # each image twice: the cache is not written into
    expected = sweep(plain, order)
    # Decoded once, when built: the files are no longer read.
    for cls in os.listdir(osp.join(data, 'train')):
        for name in os.listdir(osp.join(data, 'train', cls)):
            os.remove(osp.join(data, 'train', cls, name))
    assert_same_samples(sweep(cached, order), expected)
    with pytest.raises(ValueError, match='cannot be decoded'):
        plain[0]


def test_cache_keeps_the_bad_image_policies(cifar_tiny, tmp_path):
    data = make_small_copy(cifar_tiny, str(tmp_path / 'bad'), n_train=2, n_test=1)
    with open(osp.join(data, 'train', 'cat', 'notes.jpg'), 'w') as f:
        f.write('not an image')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    common = dict(type='ImageFolderSubset', data_root=data, data_prefix='train',
                  pipeline=pipeline)
    cached = DATASETS.build(dict(common, cache_decoded=True))
    paths = [cached.get_data_info(i)['img_path'] for i in range(len(cached))]
    bad = paths.index(osp.join(data, 'train', 'cat', 'notes.jpg'))
    with pytest.raises(ValueError, match=r'image \S+notes\.jpg cannot be decoded'):
        cached[bad]
    skip = DATASETS.build(dict(common, cache_decoded=True, bad_image='skip'))
    plain = DATASETS.build(dict(common, bad_image='skip'))
    assert skip[bad]['data_samples'].img_path == paths[bad + 1]
    assert_same_samples([skip[i] for i in range(len(skip))],
                        [plain[i] for i in range(len(plain))])


def test_cache_needs_the_loader_first(cifar_tiny):
    with pytest.raises(ValueError, match='cache_decoded=True needs LoadImageFromFile as the '
                                         'first transform of the pipeline, got PackInputs'):
        DATASETS.build(dict(type='ImageFolderSubset', data_root=cifar_tiny,
                            data_prefix='train', cache_decoded=True,
                            pipeline=[dict(type='PackInputs')]))


def test_shipped_loader_settings_give_the_same_model_inputs(cifar_tiny, tmp_path):
    """The CIFAR-10 config's cache and stacked batches against files and per-image tensors
    (mmengine's default): the data preprocessor's output (mixup/cutmix included) is the
    same to the bit."""
    data = make_small_copy(cifar_tiny, str(tmp_path / 'data'), n_train=2, n_test=1)
    cfg = Config.fromfile(CIFAR_BASE)
    assert cfg.train_dataloader.collate_fn.type == 'default_collate'
    assert cfg.train_dataloader.dataset.cache_decoded
    assert cfg.train_dataloader.sampler.type == 'ReplaySampler'
    shipped = ReplayDataset(train_dataset_cfg(data))
    plain = ReplayDataset(train_dataset_cfg(data, cache_decoded=False))
    preprocessor = MODELS.build(cfg.data_preprocessor)
    # ReplaySampler's keys: (data seed, epoch, position, sample id), pairs side by side.
    order = [(0, 2, p, (7 * p) % len(plain)) for p in range(len(plain))]
    outputs = []
    for dataset, collate in ((shipped, default_collate), (plain, pseudo_collate)):
        batch = collate(sweep(dataset, order))
        torch.manual_seed(1)
        outputs.append(preprocessor(batch, training=True))
    (a, b) = outputs
    assert a['inputs'].shape == (len(order), 3, 32, 32)
    assert torch.equal(a['inputs'], b['inputs'])
    for x, y in zip(a['data_samples'], b['data_samples']):
        assert torch.equal(x.gt_score, y.gt_score)
