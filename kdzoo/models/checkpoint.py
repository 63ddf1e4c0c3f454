"""Reading network weights from checkpoints of kdzoo, mmengine, timm, torchvision or DeiT."""
import os
import os.path as osp
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info, get_local_rank
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
    found by its file name. In a distributed run the first process of each node downloads
    while the others wait.
    """
    if not is_url(url):
        raise ValueError(f'{url!r} is not a URL; checkpoints may be URLs with the schemes '
                         f'{URL_SCHEMES}')
    filename = osp.basename(urlparse(url).path)
    if not filename:
        raise ValueError(f'checkpoint URL {url!r} names no file')
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', filename)
    if get_dist_info()[1] > 1:
        # One download per node: the other processes wait, then find the cached copy.
        if get_local_rank() == 0:
            _download(url, cached, check_hash)
        barrier()
    return _download(url, cached, check_hash)


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
