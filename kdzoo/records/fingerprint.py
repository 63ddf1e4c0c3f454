"""The fingerprint of a run's teacher outputs: everything that decides the replayed views
(the training dataset and its pipeline, the data file list, the sampler, the data seed,
mixup/cutmix) and the teacher's outputs on them (its config and checkpoint, the output
kind), with the library versions that draw and compute them. A teacher record holds the
fingerprint of the run it was made for; a run reading it must have the same one.

What is left out on purpose, because it changes neither views nor outputs: the data root
(the files are compared by their paths under it and their labels), the decoded-image
cache, loader workers and batch size, the teacher's ``channels_last``, and the teacher
checkpoint's path (its content is hashed).
"""
import copy
import hashlib
import json
import os.path as osp
from importlib import metadata


#: Libraries whose versions decide the views (decoding, transforms, generators) or the
#: teacher's outputs.
LIBRARIES = ('kdzoo', 'torch', 'numpy', 'mmcv-lite', 'mmcv', 'mmengine', 'mmpretrain', 'timm',
             'pillow', 'opencv-python', 'opencv-python-headless')
#: Dataset keys that do not change the samples.
VIEW_NEUTRAL_DATASET_KEYS = ('data_root', 'cache_decoded', 'lazy_init', 'serialize_data',
                             'test_mode', 'max_refetch')
VIEW_NEUTRAL_TEACHER_KEYS = ('channels_last',)

_sha_cache = {}


def file_sha256(path):
    """sha256 of a file's content (kept per (path, size, mtime) in the process)."""
    stat = _stat(path)
    if stat in _sha_cache:
        return _sha_cache[stat]
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            h.update(block)
    _sha_cache[stat] = h.hexdigest()
    return _sha_cache[stat]


def _stat(path):
    s = osp.realpath(path), osp.getsize(path), osp.getmtime(path)
    return s


def library_versions():
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _plain(obj):
    """A config (ConfigDict, tuples) as plain JSON-able dicts and lists."""
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def inner_dataset_cfg(loader_cfg):
    dataset = _plain(loader_cfg.get('dataset') or {})
    while str(dataset.get('type', '')).split('.')[-1] == 'ReplayDataset':
        dataset = _plain(dataset.get('dataset') or {})
    return {k: v for k, v in dataset.items() if k not in VIEW_NEUTRAL_DATASET_KEYS}


def data_files(dataset):
    """(count, sha256 of the (path under the image folder, label) list) of a dataset."""
    from kdzoo.datasets.replay import ReplayDataset
    inner = dataset
    while isinstance(inner, ReplayDataset):
        inner = inner.dataset
    prefix = getattr(inner, 'img_prefix', '') or ''
    h = hashlib.sha256()
    n = len(inner)
    for i in range(n):
        info = inner.get_data_info(i)
        path = info.get('img_path', '')
        rel = osp.relpath(path, prefix) if prefix and path else path
        h.update(f'{rel}\t{int(info.get("gt_label", -1))}\n'.encode())
    return n, h.hexdigest()


def flatten(d, prefix=''):
    """{'a.b.3.c': value} of nested dicts and lists (a list item by its index), so a
    difference is named down to the setting, e.g. ``dataset.pipeline.3.magnitude_level``."""
    out = {}
    items = enumerate(d) if isinstance(d, (list, tuple)) else dict(d).items()
    for key, value in items:
        name = f'{prefix}{key}'
        if isinstance(value, (dict, list, tuple)) and value:
            out.update(flatten(value, name + '.'))
        else:
            out[name] = value
    return out


def fingerprint_differences(recorded, run, limit=6):
    """Lines naming what differs between two fingerprints (empty when they agree)."""
    a, b = flatten(recorded), flatten(run)
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, '<absent>') != b.get(key, '<absent>'):
            lines.append(f'{key}: record {_short(a.get(key, "<absent>"))}, '
                         f'this run {_short(b.get(key, "<absent>"))}')
    if len(lines) > limit:
        lines = lines[:limit] + [f'... and {len(lines) - limit} more']
    return lines


def _short(value, n=120):
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= n else text[:n - 3] + '...'


def digest(obj):
    """sha256 of an object's canonical JSON."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def data_seed_of(cfg):
    sampler = (cfg.get('train_dataloader') or {}).get('sampler') or {}
    seed = sampler.get('data_seed')
    if seed is None:
        seed = (cfg.get('randomness') or {}).get('seed') or 0
    return int(seed)


def preprocessor_cfg(cfg):
    model = cfg.get('model') or {}
    pre = model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    return _plain(pre)


def teacher_cfg(cfg, network='teacher'):
    """The config of the teacher of source network ``network`` (``'teacher'``, or
    ``'teachers.NAME'`` for a teacher of ``model.teachers``) with its checkpoint replaced
    by the content hash, and its precision resolved: a teacher without ``bf16`` runs at
    the run's precision. Its ``view`` stays: the record holds the outputs on that view."""
    from kdzoo.models.checkpoint import resolve_checkpoint
    model = cfg.get('model') or {}
    if network.startswith('teachers.'):
        teacher = _plain((model.get('teachers') or {}).get(network[len('teachers.'):]) or {})
    else:
        teacher = _plain(model.get(network) or {})
    teacher = {k: v for k, v in teacher.items() if k not in VIEW_NEUTRAL_TEACHER_KEYS}
    if teacher and teacher.get('bf16') is None:
        from kdzoo.numerics import default_precision, run_device
        teacher['bf16'] = default_precision(cfg, run_device()) == 'bf16'
    checkpoint = teacher.pop('checkpoint', None)
    if checkpoint is not None:
        teacher['checkpoint_sha256'] = file_sha256(resolve_checkpoint(checkpoint))
    return teacher


def dataset_views(loader_cfg):
    """The views that the training set makes (``ReplayDataset(views=...)``), or None.
    All of them decide each view: the pipeline runs at the largest size asked for, and a
    view with a pipeline of its own seeds every transform of every pipeline
    (:mod:`kdzoo.datasets.views`)."""
    dataset = _plain(loader_cfg.get('dataset') or {})
    if str(dataset.get('type', '')).split('.')[-1] != 'ReplayDataset':
        return None
    return dataset.get('views') or None


def run_fingerprint(cfg, train_dataset, output, network='teacher'):
    """The fingerprint of a run (its config ``cfg`` and built training dataset) for a
    record of ``output`` (dict: kind, k, dtype) of the teacher of source network
    ``network`` (``'teacher'`` or ``'teachers.NAME'``)."""
    loader = cfg.get('train_dataloader') or {}
    sampler = _plain(loader.get('sampler') or {})
    count, files = data_files(train_dataset)
    views = dataset_views(loader)
    extra = {} if views is None else dict(views=views)
    return dict(
        dataset=inner_dataset_cfg(loader),
        sampler=dict(type=str(sampler.get('type', '')).split('.')[-1],
                     shuffle=sampler.get('shuffle', True)),
        data_seed=data_seed_of(cfg),
        data=dict(count=count, files_sha256=files),
        data_preprocessor=preprocessor_cfg(cfg),
        teacher=teacher_cfg(cfg, network),
        output=copy.deepcopy(dict(output)),
        versions=library_versions(),
        **extra,
    )


def fingerprint_digest(fingerprint):
    return digest(fingerprint)
