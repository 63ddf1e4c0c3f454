"""kdzoo's Runner builds data loaders whose workers run at a lower CPU priority than the
training process (worker_nice), after mmengine's own worker seeding."""
import os

import pytest
import torch
from torch.utils.data import Dataset

from kdzoo.engine import Runner
from kdzoo.engine.runner import DEFAULT_WORKER_NICE


class WorkerProbe(Dataset):
    """Each item: the worker's niceness and its torch seed."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return torch.tensor([os.nice(0), torch.initial_seed()], dtype=torch.float64)


def loader_cfg(**kw):
    return dict(dataset=WorkerProbe(), batch_size=1, num_workers=1,
                collate_fn=dict(type='default_collate'),
                sampler=dict(type='DefaultSampler', shuffle=False), **kw)


@pytest.mark.parametrize('nice', [None, 0, 3])
def test_workers_run_niced_after_mmengines_seeding(nice):
    base = os.nice(0)
    if base + max(nice or 0, DEFAULT_WORKER_NICE) > 19:
        pytest.skip('this process is niced too far already')
    extra = {} if nice is None else dict(worker_nice=nice)
    loader = Runner.build_dataloader(loader_cfg(**extra), seed=7)
    values = torch.cat(list(loader))
    want = base + (DEFAULT_WORKER_NICE if nice is None else nice)
    assert values[:, 0].tolist() == [want, want]
    # mmengine's seeding still ran in the worker: num_workers * rank + worker_id + seed.
    assert values[:, 1].tolist() == [7, 7]
    assert os.nice(0) == base  # the training process keeps its priority


@pytest.mark.parametrize('bad', [-1, 20, 2.5, True])
def test_a_bad_worker_nice_is_refused(bad):
    with pytest.raises(ValueError, match='worker_nice must be an integer from 0'):
        Runner.build_dataloader(loader_cfg(worker_nice=bad), seed=0)
