"""Reading network weights from checkpoints of kdzoo, mmengine, timm, torchvision or DeiT."""
import os.path as osp

import torch


def resolve_checkpoint(path):
    """A checkpoint file, or an mmengine work dir whose latest checkpoint is meant."""
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
    """Load a kdzoo/mmengine checkpoint into ``model`` (a Classifier or Distiller) and
    fail, naming a few missing and unexpected keys, unless every key of the student is
    there and no key is unexpected: a checkpoint of another model would otherwise leave
    randomly initialised weights. (The teacher comes from its own checkpoint; missing
    connectors do not change the student.)"""
    path = resolve_checkpoint(path)
    ckpt = read_checkpoint(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise ValueError(f'{path} holds no state dict')
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k.startswith('student.')]
    if missing or unexpected:
        raise ValueError(
            f'{path} does not fit the {what} of this config: {len(missing)} keys missing '
            f'(e.g. {missing[:4]}), {len(unexpected)} unexpected (e.g. {unexpected[:4]}); '
            'is it a checkpoint of this config?')
    return ckpt
