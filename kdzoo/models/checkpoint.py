"""Reading network weights from checkpoints of kdzoo, mmengine, timm, torchvision or DeiT."""
import os
import os.path as osp
import socket
from urllib.parse import urlparse

import torch
import torch.distributed as dist
from mmengine.logging import print_log

#: URL schemes a checkpoint may be given with; such a file is fetched into torch.hub's cache.
URL_SCHEMES = ('http', 'https', 'file')


def is_url(path):
    return isinstance(path, str) and urlparse(path).scheme in URL_SCHEMES


def download_checkpoint(url, check_hash=True):
    """The local copy of the checkpoint at ``url`` (http(s):// or file://), downloaded once
    into ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``) with
    torch.hub's own downloader and kept there.

    torch.hub's convention applies: a file name ``NAME-<hex>.EXT`` carries the first digits
    of the file's SHA-256, checked on download (``check_hash``); a mismatch raises a
    RuntimeError naming the URL and nothing is kept. As in torch.hub, the cached copy is
    found by its file name. In a distributed run every process must call it (it is a
    collective): one process per node and cache folder downloads while the others wait
    (see :func:`_download_once_per_node`).
    """
    if not is_url(url):
        raise ValueError(f'{url!r} is not a URL; checkpoints may be URLs with the schemes '
                         f'{URL_SCHEMES}')
    filename = osp.basename(urlparse(url).path)
    if not filename:
        raise ValueError(f'checkpoint URL {url!r} names no file')
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', filename)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        _download_once_per_node(url, cached, check_hash)
    return _download(url, cached, check_hash)


def _download_once_per_node(url, cached, check_hash):
    """Download ``url`` to ``cached`` in the first process of each group of processes that
    share that cache (same host, same cache path), while the others wait.

    The groups are found from the processes themselves (host name and cache path of every
    rank, gathered), not from a launcher's numbering: nodes may run different numbers of
    processes, several launchers may share a machine, and ``TORCH_HOME`` may differ between
    processes. Every process then learns every downloader's outcome, so a failed download
    stops all processes with an error that names the rank, the host and the reason,
    instead of leaving the others waiting at a barrier (a download that stalls holds them
    up to the process group's timeout). Rank 0 logs who downloaded.
    """
    key = (socket.gethostname(), osp.realpath(cached))
    keys = [None] * dist.get_world_size()
    dist.all_gather_object(keys, key)
    rank = dist.get_rank()
    # Per rank: None (waited), ('cached',), ('downloaded',) or ('failed', is_oserror, why).
    error = outcome = None
    if keys.index(key) == rank:
        outcome = ('cached',) if osp.isfile(cached) else ('downloaded',)
        try:
            _download(url, cached, check_hash)
        except Exception as e:  # every process must hear of it, whatever it is
            error, outcome = e, ('failed', isinstance(e, OSError), f'{type(e).__name__}: {e}')
    outcomes = [None] * len(keys)
    dist.all_gather_object(outcomes, outcome)
    if error is not None:
        raise error
    failed = [r for r, o in enumerate(outcomes) if o is not None and o[0] == 'failed']
    if failed:
        # The downloader's kind of error (OSError: cannot download; RuntimeError: a
        # damaged file), so callers that handle one handle it on every rank alike.
        r = failed[0]
        kind = OSError if outcomes[r][1] else RuntimeError
        raise kind(f'checkpoint {url}: the download failed on rank {r} (host {keys[r][0]}), '
                   f'so rank {rank} stops too; {outcomes[r][2]}')
    if rank == 0:
        downloaders = [r for r, o in enumerate(outcomes) if o == ('downloaded',)]
        if downloaders:
            print_log(f'{url}: downloaded once per host and cache folder, by rank(s) '
                      f'{downloaders}; {len(keys) - len(downloaders)} other process(es) '
                      'use that copy', logger='current')


def _download(url, cached, check_hash):
    if osp.isfile(cached):
        return cached
    filename = osp.basename(cached)
    match = torch.hub.HASH_REGEX.search(filename) if check_hash else None
    hash_prefix = match.group(1) if match and match.group(1) else None
    os.makedirs(osp.dirname(cached), exist_ok=True)
    print_log(f'downloading {url} to {cached}', logger='current')
    try:
        # Writes a temporary file beside ``cached`` and moves it there only once the
        # hash matched, so an interrupted or refused download leaves no cached file.
        torch.hub.download_url_to_file(url, cached, hash_prefix,
                                       progress=urlparse(url).scheme != 'file')
    except RuntimeError as e:
        if 'hash' in str(e):
            raise RuntimeError(f'checkpoint {url}: the SHA-256 of the download does not start '
                               f'with {hash_prefix!r} as its file name says ({e}); the file '
                               'is damaged or not the published one') from None
        raise
    except OSError as e:
        raise OSError(f'cannot download the checkpoint {url}: {e}') from e
    return cached


def resolve_checkpoint(path):
    """A checkpoint file, an mmengine work dir whose latest checkpoint is meant, or a URL
    (see :func:`download_checkpoint`)."""
    if is_url(path):
        return download_checkpoint(path)
    if osp.isdir(path):
        pointer = osp.join(path, 'last_checkpoint')
        if not osp.isfile(pointer):
            raise FileNotFoundError(f'checkpoint dir {path!r} has no last_checkpoint '
                                    'file; train there first or give a .pth file')
        with open(pointer) as f:
            target = f.read().strip()
        path = target if osp.isabs(target) else osp.join(path, osp.basename(target))
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    return path


def read_checkpoint(path):
    """``torch.load(path, weights_only=True)`` on the CPU; a file torch cannot read (cut
    short, or not a checkpoint) raises a ValueError that names it."""
    import pickle
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        if 'global' in str(e).lower() or 'getattr' in str(e):
            # weights_only refused an object it does not allow: a safety refusal, kept as
            # it is, with the file named.
            raise pickle.UnpicklingError(f'{path}: {e}') from e
        raise _unreadable(path, e) from e
    except Exception as e:  # a file cut short or of another kind fails in many ways
        raise _unreadable(path, e) from e


def _unreadable(path, error):
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    # torch's weights-only advice around the actual reason is not about this file.
    reason = [ln for ln in lines if not ln.startswith(('Weights only load failed',
                                                      'Check the documentation'))]
    first = f'{type(error).__name__}: {(reason or lines or [""])[0]}'
    return ValueError(f'{path} is not a readable checkpoint ({first}); a torch checkpoint '
                      '(.pth, as torch.save writes it) was expected: is the file cut short '
                      'or of another kind?')


#: What tools/export.py writes for each ``--to``, as error messages describe it.
EXPORT_LAYOUTS = {
    'kdzoo': 'tools/export.py --to kdzoo: state_dict and the student\'s build settings',
    'timm': "the student's tensors alone, as tools/export.py --to timm writes them",
    'mmpretrain': "tools/export.py --to mmpretrain: mmpretrain ImageClassifier keys"}


def exported_layout(ckpt, student_keys=()):
    """'kdzoo', 'timm' or 'mmpretrain' when ``ckpt`` (a loaded file) is a student written
    by tools/export.py in that layout, else None (training checkpoints included).

    'kdzoo': a ``kdzoo`` entry beside ``state_dict``. 'mmpretrain': only mmpretrain
    ImageClassifier keys of a vision transformer (``backbone.patch_embed.projection``),
    bare or under ``state_dict``, and no training progress in ``meta``. 'timm': bare
    tensors whose keys are largely those of the student (``student_keys``, without the
    ``student.`` prefix), which a teacher's or another network's state dict is not.
    """
    if not isinstance(ckpt, dict):
        return None
    if isinstance(ckpt.get('kdzoo'), dict) and isinstance(ckpt.get('state_dict'), dict):
        return 'kdzoo'
    meta = ckpt.get('meta')
    if isinstance(meta, dict) and ('epoch' in meta or 'iter' in meta):
        return None
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict) or not state:
        return None
    keys = set(state)
    if 'backbone.patch_embed.projection.weight' in keys and all(
            str(k).split('.', 1)[0] in ('backbone', 'neck', 'head', 'data_preprocessor')
            for k in keys):
        return 'mmpretrain'
    if state is ckpt and all(isinstance(v, torch.Tensor) for v in state.values()):
        shared = len(keys & set(student_keys))
        if shared and 2 * shared >= min(len(keys), len(student_keys)):
            return 'timm'
    return None


def load_state_dict_file(path):
    """Read a model state dict from a timm, torchvision or mmengine checkpoint, safely."""
    path = resolve_checkpoint(path)
    ckpt = read_checkpoint(path)
    if isinstance(ckpt, dict) and 'state_dict' in ckpt and 'meta' in ckpt:
        # A kdzoo (mmengine) checkpoint: the trained network lives under 'student.'
        # ('model.' before the rename); a distiller's teacher under 'teacher.' is not
        # part of it.
        state = ckpt['state_dict']
        for prefix in ('student.', 'model.'):
            net = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if net:
                return net
        return state
    for key in ('state_dict', 'model', 'model_ema'):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    if ckpt and all(k.startswith('module.') for k in ckpt):
        ckpt = {k[len('module.'):]: v for k, v in ckpt.items()}
    return ckpt


def load_strictly(model, path, what='model'):
    """Load a kdzoo/mmengine checkpoint into ``model`` (a Classifier or Distiller) with
    :func:`fit_state_dict`: a checkpoint of another model would otherwise leave randomly
    initialised weights."""
    path = resolve_checkpoint(path)
    ckpt = read_checkpoint(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    fit_state_dict(model, state, path, problem=f'does not fit the {what} of this config')
    return ckpt


def fit_state_dict(model, state, path, problem='does not fit the model of this config'):
    """Load ``state`` into ``model`` (a Classifier or Distiller) unless it misses a key of
    the student or holds a key the model does not have; the error names ``path``, counts
    both and lists a few of each. Shape mismatches are reported the same way instead of
    torch's error without the file. (The teacher comes from its own checkpoint, and a
    missing connector does not change the student.)"""
    if not isinstance(state, dict):
        raise ValueError(f'{path} holds no state dict (found {type(state).__name__}); a '
                         'kdzoo/mmengine checkpoint (.pth with a state_dict) was expected')
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        detail = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]
        raise ValueError(f'checkpoint {path} {problem}: {len(detail)} tensors have '
                         f'other shapes (e.g. {detail[:2]})') from None
    missing = [k for k in missing if k.startswith('student.')]
    if missing or unexpected:
        raise ValueError(
            f'checkpoint {path} {problem}: {len(missing)} student keys missing (e.g. '
            f'{missing[:4]}), {len(unexpected)} unexpected (e.g. {unexpected[:4]}); is it a '
            'checkpoint of this config?')
