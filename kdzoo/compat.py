"""Fixes for running mmengine/mmpretrain on torch >= 2.6 and numpy 2, in one place.

Imported by ``kdzoo/__init__.py``, so every entry point gets them.

1. Checkpoints. torch.load defaults to ``weights_only=True``, and mmengine checkpoints
   pickle its message hub: ``HistoryBuffer`` objects, numpy arrays, scalars and dtypes, and
   ``getattr(HistoryBuffer, 'min')``-style references to statistics methods. We allow
   exactly those objects. ``getattr`` is allowed only through a restricted stand-in that
   resolves HistoryBuffer's own public statistics methods; weights_only stays on.
2. numpy 2 removed ``np.in1d``, which mmpretrain's retrieval metrics still call.
3. Distributed training on CPU: mmengine's launcher calls ``torch.cuda.set_device``
   unconditionally; :func:`init_distributed` sets up a gloo process group first so the
   runner finds it initialised. gloo sometimes aborts in its own teardown after all work
   is done, failing a finished run; :func:`finish_distributed` ends such a process
   cleanly once every rank has finished.
4. mmcv-lite has no compiled ops, and mmcv warns on import that its deformable attention
   is missing; kdzoo never uses it, so that one warning is silenced.
5. mmengine's CheckpointHook builds a FileClient in ``before_train`` even when it is not
   given ``file_client_args`` and never uses it ("to avoid breaking backward
   compatibility", mmengine 0.10.7), and FileClient logs two deprecation warnings at every
   run that no argument avoids (``file_client_args`` itself is deprecated).
   :func:`quiet_mmengine_notices` drops exactly those two lines from a run's logger.
"""
import os
import warnings

import numpy as np
import torch
import torch.distributed as dist
from mmengine.logging.history_buffer import HistoryBuffer

warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``',
                        category=UserWarning)

_MMENGINE_NOTICES = (
    '"FileClient" will be deprecated in future.',
    '"HardDiskBackend" is the alias of "LocalBackend" and the former will be deprecated',
)


def _not_an_mmengine_notice(record):
    message = record.getMessage()
    return not any(message.startswith(notice) for notice in _MMENGINE_NOTICES)


def quiet_mmengine_notices(logger):
    """Drop mmengine's two FileClient deprecation lines (item 5 above) from ``logger``."""
    if _not_an_mmengine_notice not in logger.filters:
        logger.addFilter(_not_an_mmengine_notice)
    return logger


_HISTORY_BUFFER_METHODS = frozenset(
    name for name in dir(HistoryBuffer) if not name.startswith('_')
    and callable(getattr(HistoryBuffer, name)))


def _history_buffer_getattr(obj, name):
    """The only ``getattr`` a checkpoint may call: a public method of HistoryBuffer."""
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise RuntimeError(f'checkpoint asks for getattr({obj!r}, {name!r}), which is not '
                       'allowed under weights_only loading')


def _numpy_safe_globals():
    core = getattr(np, '_core', None) or np.core
    objs = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    objs += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return objs


def register_checkpoint_safe_globals():
    torch.serialization.add_safe_globals(
        [HistoryBuffer, *_numpy_safe_globals(),
         (_history_buffer_getattr, 'builtins.getattr'),
         (_history_buffer_getattr, '__builtin__.getattr')])


def patch_numpy():
    if not hasattr(np, 'in1d'):
        np.in1d = np.isin


def init_distributed(launcher, backend=None):
    """Initialise torch.distributed for ``launcher`` ('pytorch' or 'slurm') before the
    runner does, choosing gloo on CPU-only machines. Returns True if distributed."""
    if launcher == 'none' or dist.is_initialized():
        return launcher != 'none'
    if launcher == 'slurm' and 'RANK' not in os.environ:
        os.environ.update(RANK=os.environ['SLURM_PROCID'],
                          WORLD_SIZE=os.environ['SLURM_NTASKS'],
                          LOCAL_RANK=os.environ['SLURM_LOCALID'])
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            import subprocess
            nodes = os.environ['SLURM_NODELIST']
            os.environ['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {nodes} | head -n1')
    elif launcher not in ('pytorch', 'slurm'):
        raise ValueError(f"launcher must be 'none', 'pytorch' or 'slurm', got {launcher!r}")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        backend = backend or 'nccl'
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend)
    return True


def finish_distributed(distributed):
    """Synchronise the ranks at the end of a run and leave without gloo's teardown."""
    if not distributed or not dist.is_initialized():
        return
    dist.barrier()
    if dist.get_backend() == 'gloo':
        import logging
        import sys
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    dist.destroy_process_group()


register_checkpoint_safe_globals()
patch_numpy()
