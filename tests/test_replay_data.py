"""The replayable training data path (kdzoo/datasets/replay.py,
kdzoo/models/replay_preprocessor.py): the order of an epoch, the samples and their
mixing are functions of (data seed, epoch, sample id), so the tensor at a global position
is the same whatever came before, in any worker, and for any number of processes."""
import copy
import os
import os.path as osp
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import CONFIGS, build_runner, cifar_cfg
from test_distributed import free_port, launcher_env

from kdzoo.datasets.replay import (EpochOrder, ReplayDataset, ReplaySampler,
                                   positions_of_rank, replay_keys, seeded_global_rngs)

SHIPPED = osp.join(CONFIGS, '_base_', 'datasets', 'cifar10_deit.py')
TESTS = osp.dirname(osp.abspath(__file__))
DATA_SEED = 11


def shipped_cfg():
    from mmengine.config import Config
    return Config.fromfile(SHIPPED)


def shipped_dataset(root, per_class=2):
    """The shipped CIFAR-10 training set (its pipeline, cache and all) on ``root``,
    wrapped as kdzoo's Runner wraps it."""
    cfg = shipped_cfg().train_dataloader.dataset
    cfg.update(data_root=str(root), per_class=per_class)
    return ReplayDataset(cfg.to_dict())


def shipped_preprocessor(**options):
    """The shipped config's data_preprocessor (ReplayClsDataPreprocessor, mixup/cutmix)."""
    from kdzoo.registry import MODELS
    cfg = shipped_cfg().data_preprocessor.to_dict()
    cfg.update(options)
    return MODELS.build(cfg)


def preprocess(pre, samples, training=True):
    """``pre`` on a fresh batch of ``samples`` (the preprocessor writes its scores into
    the batch's data samples, so a batch is never run twice)."""
    from mmengine.dataset import default_collate
    out = pre(default_collate(copy.deepcopy(samples)), training)
    return out['inputs'], torch.stack([s.gt_score for s in out['data_samples']])


def stir_rngs(seed):
    """Move Python's, numpy's and torch's global generators somewhere else."""
    random.seed(seed)
    np.random.seed(seed + 1)
    torch.manual_seed(seed + 2)
    random.random()
    np.random.rand(seed % 5 + 1)
    torch.rand(seed % 7 + 1)


def rng_states():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def assert_same_rng_states(a, b):
    assert a[0] == b[0]
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
    assert torch.equal(a[2], b[2])


def sampler_keys(n, rank, world_size, epoch=0, **kwargs):
    sampler = ReplaySampler(list(range(n)), **kwargs)
    sampler.rank, sampler.world_size = rank, world_size
    sampler.set_epoch(epoch)
    return sampler, list(sampler)


# ---------------------------------------------------------------- the sampler


@pytest.mark.parametrize('n', [1, 7, 30, 31])
@pytest.mark.parametrize('world_size', [1, 2, 3, 8])
def test_sampler_deals_whole_pairs_of_one_order(n, world_size):
    epoch = 4
    order = EpochOrder(n, DATA_SEED, epoch)
    padded = 2 * -(-n // 2)
    assert len(order) == padded and order.pairs == padded // 2
    assert sorted(order.ids[:n].tolist()) == list(range(n))  # a permutation, padded
    if n % 2:
        assert order.ids[n] == order.ids[0]
    every = []
    for rank in range(world_size):
        sampler, keys = sampler_keys(n, rank, world_size, epoch, data_seed=DATA_SEED)
        # Equal counts on every rank (else a DDP step waits for ever), as len() says.
        assert len(keys) == len(sampler) == 2 * -(-order.pairs // world_size)
        for data_seed, key_epoch, position, sample_id in keys:
            assert (data_seed, key_epoch) == (DATA_SEED, epoch)
            assert sample_id == order.ids[position]
        positions = np.array([k[2] for k in keys]).reshape(-1, 2)
        # Whole pairs (2q, 2q + 1), in this order, pairs rank, rank + W, ... (wrapped).
        assert (positions[:, 0] % 2 == 0).all()
        assert (positions[:, 1] == positions[:, 0] + 1).all()
        pairs = positions[:, 0] // 2
        assert pairs.tolist() == [q % order.pairs
                                  for q in range(rank, len(pairs) * world_size, world_size)]
        every += positions.reshape(-1).tolist()
    assert set(every) == set(range(padded))


def test_sampler_order_follows_epoch_and_seed():
    n = 30
    ids = {}
    for epoch in (0, 1):
        for copy_ in range(2):
            sampler, _ = sampler_keys(n, 0, 1, epoch, data_seed=5)
            ids[epoch, copy_] = sampler.order().ids
    assert np.array_equal(ids[0, 0], ids[0, 1]) and np.array_equal(ids[1, 0], ids[1, 1])
    assert not np.array_equal(ids[0, 0], ids[1, 0])
    # data_seed=None: the run's seed (each seed of a sweep its own stream).
    run7 = ReplaySampler(list(range(n)), seed=7)
    assert run7.data_seed == 7
    assert np.array_equal(run7.order().ids, ReplaySampler(list(range(n)), data_seed=7)
                          .order().ids)
    assert not np.array_equal(run7.order().ids, ReplaySampler(list(range(n)), seed=8)
                              .order().ids)
    assert ReplaySampler(list(range(n)), data_seed=np.int64(3)).data_seed == 3
    unshuffled = ReplaySampler(list(range(n)), data_seed=1, shuffle=False).order()
    assert unshuffled.ids.tolist() == list(range(n))


@pytest.mark.parametrize('data_seed', [-1, 1.5, '3', True])
def test_sampler_rejects_a_bad_data_seed(data_seed):
    with pytest.raises(ValueError, match=r'data_seed must be an integer >= 0, got '):
        ReplaySampler(list(range(4)), data_seed=data_seed)


@pytest.mark.parametrize('n', [30, 32, 33, 100])
def test_global_steps_do_not_depend_on_the_world_size(n):
    """Global batch 16 as 1 x 16, 2 x 8 or 4 x 4: step s reads the same positions (the
    last step adds, for W > 1, only the wrapped pairs that even the ranks out)."""
    global_batch = 16
    pairs = -(-n // 2)
    steps = {}
    for world_size in (1, 2, 4):
        batch = global_batch // world_size
        per_rank = [positions_of_rank(pairs, rank, world_size).tolist()
                    for rank in range(world_size)]
        count = -(-len(per_rank[0]) // batch)
        steps[world_size] = [
            set(p for rank in per_rank for p in rank[s * batch:(s + 1) * batch])
            for s in range(count)]
    reference = steps[1]
    for world_size in (2, 4):
        assert len(steps[world_size]) == len(reference)
        for s, (mine, ref) in enumerate(zip(steps[world_size], reference)):
            if s < len(reference) - 1:
                assert mine == ref, (world_size, s)
            else:
                padded = -(-pairs // world_size) * world_size
                wrapped = set(range(2 * (padded - pairs)))
                assert ref <= mine and mine - ref <= wrapped, (world_size, s)


# ---------------------------------------------------------------- the dataset


@pytest.fixture(scope='module')
def cifar_replay(cifar_tiny):
    """20 CIFAR-10 training images through the shipped pipeline."""
    return shipped_dataset(cifar_tiny, per_class=2)


def keys_of(dataset, epoch=1, data_seed=DATA_SEED):
    sampler = ReplaySampler(dataset, data_seed=data_seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def test_a_key_gives_the_same_sample_whatever_came_before(cifar_replay):
    ds = cifar_replay
    keys = keys_of(ds)
    # The pipeline is random: without the keys, the global generators decide.
    stir_rngs(1)
    free_a = [ds[k[3]]['inputs'] for k in keys]
    stir_rngs(2)
    free_b = [ds[k[3]]['inputs'] for k in keys]
    assert sum(not torch.equal(a, b) for a, b in zip(free_a, free_b)) >= len(keys) // 2

    stir_rngs(3)
    first = [ds[k]['inputs'] for k in keys]
    again = {}
    for i in reversed(range(len(keys))):
        stir_rngs(10 + i)
        again[i] = ds[keys[i]]['inputs']
    for i in range(len(keys)):
        assert torch.equal(first[i], again[i]), keys[i]
    # A sample depends on its id, not its position: a pair wrapped to even the ranks out
    # repeats the sample at its first position.
    data_seed, epoch, position, sample_id = keys[5]
    assert torch.equal(ds[(data_seed, epoch, position + 20, sample_id)]['inputs'], first[5])


def test_other_epochs_and_seeds_give_other_views(cifar_replay):
    ds = cifar_replay
    base = {k[3]: ds[k]['inputs'] for k in keys_of(ds, epoch=1)}
    for other in (keys_of(ds, epoch=2), keys_of(ds, epoch=1, data_seed=DATA_SEED + 1)):
        differ = sum(not torch.equal(ds[k]['inputs'], base[k[3]]) for k in other)
        assert differ >= 0.8 * len(base), differ


def test_a_sample_leaves_the_global_generators_as_they_were(cifar_replay, monkeypatch):
    ds = cifar_replay
    key = keys_of(ds)[3]
    stir_rngs(4)
    touched = []
    for name in ('manual_seed', 'manual_seed_all', 'seed', 'seed_all', 'set_rng_state',
                 'set_rng_state_all'):
        monkeypatch.setattr(torch.cuda, name,
                            lambda *a, _name=name, **k: touched.append(_name))
    before = rng_states()
    sample = ds[key]
    assert_same_rng_states(before, rng_states())
    with seeded_global_rngs(1, 2, 3):
        np.random.rand(3)
    assert_same_rng_states(before, rng_states())
    # The GPU's generators (dropout, drop path) are none of the data's business.
    assert touched == []
    assert sample['data_samples'].metainfo['replay'] == key
    assert replay_keys([sample['data_samples']]) == [key]
    assert replay_keys([ds[key[3]]['data_samples']]) is None


# ---------------------------------------------------------------- pair mixing


@pytest.fixture(scope='module')
def keyed_batch(cifar_replay):
    """The first 16 samples of epoch 1 (8 pairs), their keys, the preprocessor."""
    keys = keys_of(cifar_replay)[:16]
    return [cifar_replay[k] for k in keys], keys, shipped_preprocessor()


def check_pair(xa, xb, oa, ob, sa, sb, score_a, score_b):
    """Asserts that (oa, ob), (score_a, score_b) mix (xa, xb), (sa, sb) as one pair
    (one lam, one box); returns 'mixup', 'cutmix' or None (one image twice)."""
    diff = (xa != xb).any(0)
    if not diff.any():
        assert torch.equal(oa, xa) and torch.equal(ob, xb)
        return None
    la, lb = int(sa.argmax()), int(sb.argmax())
    lam = float(score_a[la]) if la != lb else None
    from_b = (oa != xa).any(0)
    from_a = (ob != xb).any(0)
    pixel_picked = (torch.equal(oa, torch.where(from_b, xb, xa))
                    and torch.equal(ob, torch.where(from_a, xa, xb)))
    if pixel_picked:
        # cutmix: each pixel from one image; one box, filled from the other image in each.
        assert torch.equal(from_b, from_a)
        rows, cols = from_b.any(1).nonzero()[:, 0], from_b.any(0).nonzero()[:, 0]
        box = torch.zeros_like(diff)
        box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        assert torch.equal(box & diff, from_b)
        if lam is not None:  # lam = 1 - box area / image area
            area = int(box.sum())
            assert area <= round((1 - lam) * diff.numel()) <= area + 2 * sum(diff.shape)
        kind = 'cutmix'
    else:
        if lam is None:  # one class: lam from the pixels
            d = xa - xb
            lam = float(((oa - xb) * d).sum() / (d * d).sum())
        assert 0 < lam < 1
        torch.testing.assert_close(oa, lam * xa + (1 - lam) * xb, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ob, lam * xb + (1 - lam) * xa, rtol=1e-5, atol=1e-5)
        kind = 'mixup'
    if la != lb:
        torch.testing.assert_close(score_a, lam * sa + (1 - lam) * sb)
        torch.testing.assert_close(score_b, lam * sb + (1 - lam) * sa)
    else:
        assert torch.equal(score_a, sa) and torch.equal(score_b, sb)
    return kind


def test_pairs_mix_with_each_other(keyed_batch):
    samples, keys, pre = keyed_batch
    raw, labels = preprocess(pre, samples, training=False)
    onehot = torch.nn.functional.one_hot(torch.tensor(
        [int(s['data_samples'].gt_label) for s in samples]), 10).float()
    mixed, scores = preprocess(pre, samples)
    assert not torch.equal(mixed, raw)
    kinds = [check_pair(raw[j], raw[j + 1], mixed[j], mixed[j + 1], onehot[j], onehot[j + 1],
                        scores[j], scores[j + 1]) for j in range(0, len(keys), 2)]
    # Both augments of the shipped config show up in these 8 pairs.
    assert 'mixup' in kinds and 'cutmix' in kinds, kinds


def test_a_pair_does_not_depend_on_the_rest_of_its_batch(keyed_batch):
    samples, keys, pre = keyed_batch
    stir_rngs(5)
    whole = preprocess(pre, samples)
    stir_rngs(6)
    halves = [preprocess(pre, samples[:8]), preprocess(pre, samples[8:])]
    for i in range(2):
        assert torch.equal(whole[i], torch.cat([h[i] for h in halves]))
    # The pairs in another order, another batch: the same tensor for each pair.
    order = [6, 7, 0, 1, 14, 15]
    part = preprocess(pre, [samples[i] for i in order])
    for i in range(2):
        assert torch.equal(whole[i][order], part[i])


def test_pairs_must_be_side_by_side(keyed_batch):
    samples, keys, pre = keyed_batch
    fix = r'use an even per-process batch_size with ReplaySampler'
    with pytest.raises(ValueError, match=fix):
        preprocess(pre, samples[:7])
    with pytest.raises(ValueError, match=fix):
        preprocess(pre, [samples[1], samples[0]] + samples[2:8])
    with pytest.raises(ValueError, match=fix):
        preprocess(pre, samples[1:9])
    # Evaluation does not mix: any batch goes.
    preprocess(pre, samples[:7], training=False)


def test_a_training_batch_needs_replay_keys(cifar_replay, keyed_batch):
    samples, keys, pre = keyed_batch
    plain = [cifar_replay[k[3]] for k in keys[:8]]
    with pytest.raises(RuntimeError, match=r"sampler=dict\(type='ReplaySampler'\)"):
        preprocess(pre, plain)
    with pytest.raises(RuntimeError, match='has none'):
        preprocess(pre, samples[:7] + plain[7:])
    # The keys of one batch do not leak into the next.
    preprocess(pre, samples[:8])
    with pytest.raises(RuntimeError, match='has none'):
        preprocess(pre, plain)


def test_batch_mix_mode_replays_and_bad_modes_are_named(keyed_batch):
    samples, keys, _ = keyed_batch
    pre = shipped_preprocessor(mix_mode='batch')
    stir_rngs(7)
    first = preprocess(pre, samples)
    stir_rngs(8)
    second = preprocess(pre, samples)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    raw = preprocess(pre, samples, training=False)[0]
    assert not torch.equal(first[0], raw)
    allowed = r"mix_mode must be one of \('pair', 'batch'\), got 'pairs'"
    with pytest.raises(ValueError, match=allowed):
        shipped_preprocessor(mix_mode='pairs')
    with pytest.raises(ValueError, match=allowed):
        shipped_preprocessor(mix_mode='pairs', batch_augments=None)


# ---------------------------------------------------------------- through the Runner


def loader_epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    keys, inputs = [], []
    for data in loader:
        keys += [s.metainfo['replay'] for s in data['data_samples']]
        inputs.append(data['inputs'])
    return keys, torch.cat(inputs)


def test_runner_wraps_the_training_set_and_its_epochs_replay(cifar_tiny, tmp_path):
    from kdzoo.models import ReplayClsDataPreprocessor
    cfg = cifar_cfg('deit_micro_cifar10', cifar_tiny, tmp_path / 'work', batch_size=8,
                    per_class=2, **{'randomness.seed': 5})
    runner = build_runner(cfg)
    assert isinstance(runner.model.data_preprocessor, ReplayClsDataPreprocessor)
    loader = runner.train_loop.dataloader
    assert isinstance(loader.dataset, ReplayDataset)
    assert isinstance(loader.sampler, ReplaySampler)
    assert loader.sampler.data_seed == runner.seed == 5  # data_seed=None: the run's seed
    keys, inputs = loader_epoch(loader, 2)
    assert len(keys) == 20 and sorted(k[2] for k in keys) == list(range(20))
    stir_rngs(9)
    loader_epoch(loader, 3)
    assert loader_epoch(loader, 2)[0] == keys
    assert torch.equal(loader_epoch(loader, 2)[1], inputs)
    forked = runner.build_dataloader(dict(runner._train_dataloader, num_workers=2,
                                          multiprocessing_context='fork'), seed=runner.seed)
    assert forked.num_workers == 2
    forked_keys, forked_inputs = loader_epoch(forked, 2)
    assert forked_keys == keys
    assert torch.equal(forked_inputs, inputs)


# ---------------------------------------------------------------- two processes

WORKER = textwrap.dedent(f'''
    import sys
    sys.path.insert(0, {TESTS!r})
    import torch
    import torch.distributed as dist
    dist.init_process_group('gloo')
    import test_replay_data
    from kdzoo.compat import finish_distributed
    steps = test_replay_data.epoch_tensors(sys.argv[1], batch_size=8)
    torch.save(steps, sys.argv[2] % dist.get_rank())
    # gloo's own teardown aborts now and then after all work is done: leave without it.
    finish_distributed(True)
''')


def epoch_tensors(root, batch_size, per_class=3, epoch=1):
    """One epoch of the shipped pipeline and preprocessor on this process's share (rank
    and world size of the process group, if any): per step, the positions, the mixed
    inputs and their scores."""
    from mmengine.dataset import default_collate
    from torch.utils.data import DataLoader
    ds = shipped_dataset(root, per_class)
    sampler = ReplaySampler(ds, data_seed=DATA_SEED)
    sampler.set_epoch(epoch)
    pre = shipped_preprocessor()
    steps = []
    for data in DataLoader(ds, batch_size=batch_size, sampler=sampler,
                           collate_fn=default_collate):
        positions = torch.tensor([s.metainfo['replay'][2] for s in data['data_samples']])
        out = pre(data, training=True)
        steps.append(dict(positions=positions, inputs=out['inputs'],
                          scores=torch.stack([s.gt_score for s in out['data_samples']])))
    return steps


def test_two_processes_see_the_tensors_of_one(cifar_tiny, tmp_path):
    """2 gloo processes x batch 8 and 1 process x batch 16 over 30 images (15 pairs, so
    the second rank wraps around to pair 0): the same tensor at every global position,
    the same positions at every global step."""
    port = str(free_port())
    out = str(tmp_path / 'rank%d.pt')
    procs = [subprocess.Popen(
        [sys.executable, '-c', WORKER, str(cifar_tiny), out],
        env=launcher_env(tmp_path, RANK=str(rank), WORLD_SIZE='2', LOCAL_RANK=str(rank),
                         MASTER_ADDR='127.0.0.1', MASTER_PORT=port),
        cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(2)]
    try:
        for rank, proc in enumerate(procs):
            output, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, (rank, output[-3000:])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ranks = [torch.load(out % rank, weights_only=True) for rank in range(2)]
    single = epoch_tensors(cifar_tiny, batch_size=16)
    by_position = {}
    for step in single:
        for i, p in enumerate(step['positions'].tolist()):
            by_position[p] = (step['inputs'][i], step['scores'][i])
    assert sorted(by_position) == list(range(30))
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 2
    for s, step in enumerate(single):
        mine = set(ranks[0][s]['positions'].tolist() + ranks[1][s]['positions'].tolist())
        ref = set(step['positions'].tolist())
        assert mine == ref if s == 0 else (ref <= mine and mine - ref == {0, 1}), s
    for rank in ranks:
        for step in rank:
            for i, p in enumerate(step['positions'].tolist()):
                assert torch.equal(step['inputs'][i], by_position[p][0]), p
                assert torch.equal(step['scores'][i], by_position[p][1]), p
