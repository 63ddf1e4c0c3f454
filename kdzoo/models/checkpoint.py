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


def load_state_dict_file(path):
    """Read a model state dict from a timm, torchvision or mmengine checkpoint, safely."""
    path = resolve_checkpoint(path)
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
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
