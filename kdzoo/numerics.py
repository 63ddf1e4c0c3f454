"""CPU float settings of every kdzoo entry point: subnormal floats flushed to zero, and
the precision (bf16 autocast or float32) a run takes.

Subnormal floats (between ~1e-45 and ~1e-38) cost a microcode assist per operation on
many Intel CPUs: MHCA's positional term spreads a query's attention logits over hundreds,
so many ``exp(s - max)`` of its softmax land there, and one MHCA layer of DearKD-S
(fwd+bwd, 1 thread) took 141 ms instead of 29 ms with them flushed. Flushing (FTZ/DAZ)
changes results only where a value is below 1e-38 in magnitude, far under anything a
loss or a softmax weight resolves. ``KDZOO_FLUSH_DENORMAL=0`` or the config's
``env_cfg.flush_denormal=False`` keeps subnormals.

The flag lives in each thread's MXCSR register. A thread starts with a copy of its
creator's, so torch's OpenMP workers created before the flag was set keep the old mode
(measured: after ``torch.set_flush_denormal(True)`` on the main thread, the half of a
2-thread elementwise op that the worker computes still gave subnormals).
:func:`flush_denormals` therefore also releases the calling thread's OpenMP workers
(``omp_pause_resource_all``), so that the next parallel region starts new ones, which
copy the new mode.
"""
import contextlib
import ctypes
import os
import sys
from functools import lru_cache

import torch

#: The environment switch: 0 keeps subnormal floats, 1 flushes them (the default).
FLUSH_ENV = 'KDZOO_FLUSH_DENORMAL'
#: ``env_cfg.precision`` values: 'fp32', 'bf16' (autocast), 'auto' (bf16 where the device
#: computes it natively: GPUs with bf16, CPUs with AVX512-BF16 or AMX-BF16).
PRECISIONS = ('fp32', 'bf16', 'auto')

#: The bits of a float32 subnormal (about 1e-39).
SUBNORMAL_BITS = 0x000AE398
_flushed = None  # the mode last set by flush_denormals (None: never called)


def _env_cfg(cfg):
    """``cfg.env_cfg`` of a config, or ``cfg`` itself when it is an env_cfg dict."""
    if cfg is None:
        return {}
    env = cfg.get('env_cfg') if 'env_cfg' in cfg else cfg
    return env or {}


def flush_denormal_wanted(cfg=None):
    """Whether subnormals are to be flushed: ``KDZOO_FLUSH_DENORMAL`` if set, else the
    config's ``env_cfg.flush_denormal``, else True."""
    value = os.environ.get(FLUSH_ENV, '').strip().lower()
    if value:
        if value in ('1', 'true', 'on', 'yes'):
            return True
        if value in ('0', 'false', 'off', 'no'):
            return False
        raise ValueError(f'{FLUSH_ENV}={os.environ[FLUSH_ENV]!r}: use 1 (flush subnormal '
                         'floats, the default) or 0 (keep them)')
    wanted = _env_cfg(cfg).get('flush_denormal', True)
    if not isinstance(wanted, bool):
        raise ValueError(f'env_cfg.flush_denormal must be True or False, got {wanted!r}')
    return wanted


@lru_cache(maxsize=1)
def _omp_pause():
    """``omp_pause_resource_all`` of the OpenMP runtime in this process, or None."""
    try:
        return ctypes.CDLL(None).omp_pause_resource_all
    except (AttributeError, OSError):
        pass
    if sys.platform.startswith('linux'):
        try:
            with open('/proc/self/maps') as f:
                libs = {line.split()[-1] for line in f if 'omp' in line.rsplit('/', 1)[-1]}
        except OSError:
            libs = set()
        for lib in sorted(libs):
            try:
                return ctypes.CDLL(lib).omp_pause_resource_all
            except (AttributeError, OSError):
                continue
    return None


def restart_intra_op_threads():
    """Release the calling thread's OpenMP workers, so that torch's next parallel region
    starts new ones with this thread's float mode. False when it cannot (no OpenMP, or a
    runtime without ``omp_pause_resource_all``); a no-op cost of one thread start else."""
    if not torch.backends.openmp.is_available():
        return False
    pause = _omp_pause()
    if pause is None:
        return False
    pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
    return pause(2) == 0  # omp_pause_hard: the workers exit


def flush_denormals(cfg=None):
    """Flush subnormal floats to zero on the CPU (FTZ/DAZ) in this thread and torch's
    intra-op threads, unless switched off (:func:`flush_denormal_wanted`); returns whether
    they are flushed now (False also on a CPU without the flag, e.g. ARM)."""
    global _flushed
    wanted = flush_denormal_wanted(cfg)
    supported = torch.set_flush_denormal(wanted)
    flushed = wanted and supported
    if supported and flushed != _flushed:
        # Workers started before now keep the mode they were created with.
        restart_intra_op_threads()
    _flushed = flushed
    return flushed


def denormals_flushed():
    """The mode the last :func:`flush_denormals` set (False before any call)."""
    return bool(_flushed)


def intra_op_flush_check(threads=None):
    """Whether every intra-op thread flushes subnormals: an elementwise op on subnormal
    inputs split over ``threads`` (default: torch's count) gives zeros in every thread's
    chunk only then. A functional check, for tests and diagnostics."""
    threads = threads or torch.get_num_threads()
    # Made from its bits: a float conversion would itself be flushed. 4 x torch's grain size
    # per thread.
    x = torch.full((threads * 4 * 32768,), SUBNORMAL_BITS, dtype=torch.int32)
    return bool((x.view(torch.float32) * 1.0).eq(0).all())


# ----- precision -------------------------------------------------------------------------------
def cpu_flags(text):
    """The CPU feature flags in ``/proc/cpuinfo`` text (x86 'flags', ARM 'Features')."""
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() in ('flags', 'Features'):
            flags.update(value.split())
    return flags


@lru_cache(maxsize=1)
def cpu_has_native_bf16():
    """Whether this CPU computes bf16 natively: AVX512-BF16 or AMX-BF16 (x86), BF16
    (ARM). Read from /proc/cpuinfo on Linux; elsewhere False (``precision='bf16'`` asks
    for bf16 regardless)."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        with open('/proc/cpuinfo') as f:
            flags = cpu_flags(f.read())
    except OSError:
        return False
    return bool(flags & {'avx512_bf16', 'amx_bf16', 'bf16'})


def device_has_native_bf16(device):
    """bf16 where it is native: a CUDA GPU with bf16 (compute capability 8 on), a CPU by
    :func:`cpu_has_native_bf16`; False for other devices."""
    kind = torch.device(device).type
    if kind == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(
            including_emulation=False)
    if kind == 'cpu':
        return cpu_has_native_bf16()
    return False


def default_precision(cfg, device, amp=False, fp32=False):
    """'bf16' (autocast) or 'fp32' for a run on ``device``: ``--fp32`` or ``--amp``
    (``fp32``/``amp``) if given, else the config's ``env_cfg.precision`` ('fp32', 'bf16',
    or 'auto': bf16 where the device computes it natively); 'fp32' when the config has
    none."""
    if amp and fp32:
        raise ValueError('--amp (bf16) and --fp32 contradict each other; give one of them')
    if fp32:
        return 'fp32'
    if amp:
        return 'bf16'
    precision = _env_cfg(cfg).get('precision', 'fp32')
    if precision not in PRECISIONS:
        raise ValueError(f'env_cfg.precision must be one of {PRECISIONS}, got {precision!r}')
    if precision == 'auto':
        return 'bf16' if device_has_native_bf16(device) else 'fp32'
    return precision


def autocast_for(precision, device):
    """The context a forward pass of a run of ``precision`` ('bf16' or 'fp32') takes on
    ``device``: bf16 autocast, or none."""
    if precision == 'bf16':
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_device():
    """The device a run takes: 'cuda' where torch sees a GPU, else 'cpu'."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


_AUTOCAST_WRAPPERS = ('AutocastOptimWrapper', 'AmpOptimWrapper')
_AUTOCAST_LOOPS = {'val_cfg': ('ValLoop', 'AutocastValLoop'),
                   'test_cfg': ('TestLoop', 'AutocastTestLoop')}


def apply_precision(cfg, device=None, amp=False, fp32=False):
    """Resolve a run's precision (:func:`default_precision`) and set the config up for it,
    in place: ``env_cfg.precision`` becomes 'bf16' or 'fp32'; under bf16 the optimizer
    wrapper autocasts the training step (``kdzoo.AutocastOptimWrapper``) and validation and
    testing run under bf16 autocast (``kdzoo.AutocastValLoop``/``AutocastTestLoop``);
    under fp32 they are plain (a config's own ``AmpOptimWrapper``, float16, stays unless
    ``fp32`` is given). A teacher without a ``bf16`` key follows the run. Idempotent;
    returns the precision."""
    precision = default_precision(cfg, device or run_device(), amp, fp32)
    if cfg.get('env_cfg') is None:
        cfg['env_cfg'] = {}
    cfg['env_cfg']['precision'] = precision
    bf16 = precision == 'bf16'
    wrapper = cfg.get('optim_wrapper')
    if isinstance(wrapper, dict):
        kind = str(wrapper.get('type', 'OptimWrapper')).split('.')[-1]
        if bf16 and kind not in _AUTOCAST_WRAPPERS:
            wrapper['type'] = 'kdzoo.AutocastOptimWrapper'
            wrapper.setdefault('dtype', 'bfloat16')
        elif not bf16 and (kind == 'AutocastOptimWrapper'
                           or (fp32 and kind in _AUTOCAST_WRAPPERS)):
            # mmengine's AmpOptimWrapper (float16 with a loss scaler, which a config names
            # on purpose) is left alone unless --fp32 asks for float32 explicitly.
            wrapper['type'] = 'OptimWrapper'
            wrapper.pop('dtype', None)
    for key, (plain, autocast) in _AUTOCAST_LOOPS.items():
        loop = cfg.get(key)
        if not isinstance(loop, dict):
            continue  # no such loop (None), or a loop object built by the caller
        kind = str(loop.get('type', plain)).split('.')[-1]
        if kind not in (plain, autocast):
            continue  # a loop of the user's own: its precision is its own business
        if bf16:
            loop['type'] = f'kdzoo.{autocast}'
            loop.pop('fp16', None)
        else:
            if kind == autocast:
                loop.pop('type')
            loop.pop('fp16', None)
    return precision
