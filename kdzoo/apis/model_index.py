"""kdzoo's model index in OpenMMLab's model-index format (as mmpretrain's): the root
``model-index.yml`` imports one ``configs/<family>/metafile.yml`` per family, each with its
``Collections`` (paper, architecture, training data) and ``Models`` (config, parameters,
FLOPs, weights and results).

A result is ``{Task: Image Classification, Dataset: ImageNet-1k | CIFAR-10, Metrics: {...}}``;
the metric ``Top 1 Accuracy`` is measured with kdzoo, ``Top 1 Accuracy (paper)`` is the
figure the paper reports (``null`` where the paper gives none).
"""
import os.path as osp

from .configs import package_root

INDEX_FILE = 'model-index.yml'
KDZOO_TOP1 = 'Top 1 Accuracy'
PAPER_TOP1 = 'Top 1 Accuracy (paper)'
RESULT_KEYS = ('Task', 'Dataset', 'Metrics')


def _read_yaml(path):
    import yaml
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f) or {}


def metafiles(root=None):
    """Paths of the metafiles that ``model-index.yml`` imports."""
    root = root or package_root()
    index = osp.join(root, INDEX_FILE)
    if not osp.isfile(index):
        raise FileNotFoundError(f'{index} does not exist')
    paths = _read_yaml(index).get('Import') or []
    for p in paths:
        if not osp.isfile(osp.join(root, p)):
            raise ValueError(f'{index} imports {p!r}, which does not exist')
    return [osp.join(root, p) for p in paths]


def load_metafile(path, root=None):
    """A metafile, checked: every model has a name, a collection of the file, an existing
    config and results with a task, a dataset and metrics."""
    root = root or package_root()
    meta = _read_yaml(path)
    collections = {c.get('Name') for c in meta.get('Collections') or []}
    for model in meta.get('Models') or []:
        for key in ('Name', 'In Collection', 'Config'):
            if key not in model:
                raise ValueError(f'{path}: model {model.get("Name", "?")!r} lacks {key!r}')
        if model['In Collection'] not in collections:
            raise ValueError(f"{path}: {model['Name']} is in collection "
                             f"{model['In Collection']!r}; the file has {sorted(collections)}")
        if not osp.isfile(osp.join(root, model['Config'])):
            raise ValueError(f"{path}: config {model['Config']!r} does not exist")
        for result in model.get('Results') or []:
            missing = [k for k in RESULT_KEYS if k not in result]
            if missing or not isinstance(result['Metrics'], dict):
                raise ValueError(f"{path}: a result of {model['Name']} needs {RESULT_KEYS} "
                                 f'with Metrics a mapping; got {result}')
    return meta


def zoo_models(root=None):
    """Every model of the index (metafile entries, in index order)."""
    root = root or package_root()
    models = []
    for path in metafiles(root):
        models.extend(load_metafile(path, root).get('Models') or [])
    names = [m['Name'] for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f'model names used twice in the model index: {dupes}')
    return models


def top1(model, metric=KDZOO_TOP1):
    """``(found, value)`` of a model's ``metric`` over its results; ``value`` may be None
    (the paper gives no figure)."""
    for result in model.get('Results') or []:
        if metric in result['Metrics']:
            return True, result['Metrics'][metric]
    return False, None
