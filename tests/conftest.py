"""Shared fixtures: the shipped CIFAR-10 subset, tiny model configs and config loading."""
import importlib.util
import os
import os.path as osp
import shutil
import sys
import uuid

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
ARCHIVE = osp.join(REPO, 'kdzoo', 'assets', 'cifar10_mini.tar.gz')
CIFAR_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                 'ship', 'truck')

if REPO not in sys.path:
    sys.path.insert(0, REPO)

import kdzoo  # noqa: E402,F401  (registers every component, applies the compat fixes)

# Two cores are shared with other work: keep each test process to one intra-op thread.
torch.set_num_threads(1)


def load_tool(name):
    """Import tools/<name>.py as a module (tools/ is not a package)."""
    path = osp.join(REPO, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'kdzoo_tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_path(name):
    """configs/deit/<name>.py"""
    return osp.join(CONFIGS, 'deit', f'{name}.py')


def make_small_copy(src, dst, n_train=20, n_test=10):
    """A class-folder copy of ``src`` with the first ``n_train``/``n_test`` images (sorted by
    name) of every class; returns ``dst``."""
    for split, n in (('train', n_train), ('test', n_test)):
        for cls in sorted(os.listdir(osp.join(src, split))):
            files = sorted(os.listdir(osp.join(src, split, cls)))[:n]
            os.makedirs(osp.join(dst, split, cls), exist_ok=True)
            for f in files:
                shutil.copyfile(osp.join(src, split, cls, f), osp.join(dst, split, cls, f))
    return dst


@pytest.fixture(scope='session')
def cifar_mini(tmp_path_factory):
    """The shipped subset (500 train / 100 test per class), unpacked once per session."""
    from kdzoo.apis import unpack_archive
    out = str(tmp_path_factory.mktemp('data') / 'cifar10_mini')
    unpack_archive(ARCHIVE, out)
    return out


#: What a wheel is built from (the checkout's tree itself is never built in).
WHEEL_SOURCES = ('setup.py', 'MANIFEST.in', 'README.md', 'model-index.yml', 'kdzoo',
                 'configs', 'tools')


@pytest.fixture(scope='session')
def kdzoo_wheel(tmp_path_factory):
    """The path of a wheel built (once per session) from a copy of the sources."""
    import subprocess
    src = tmp_path_factory.mktemp('src')
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info', '.*')
    for name in WHEEL_SOURCES:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp('dist')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '--no-index', '-q', '-w', str(dist), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    [path] = list(dist.glob('kdzoo-*.whl'))
    return str(path)


@pytest.fixture(scope='session')
def cifar_tiny(cifar_mini, tmp_path_factory):
    """20 train / 10 test images per class, for fast runner tests."""
    return make_small_copy(cifar_mini, str(tmp_path_factory.mktemp('data') / 'cifar10_tiny'))


def tiny_deit(distilled=True, num_classes=10, **kw):
    cfg = dict(type='DeiT', arch=None, embed_dim=32, depth=2, num_heads=2, patch_size=4,
               img_size=32, distilled=distilled, num_classes=num_classes, drop_path_rate=0.0)
    cfg.update(kw)
    return cfg


def tiny_resnet(num_classes=10):
    return dict(type='CifarResNet', depth=8, widths=(8, 16, 32), num_classes=num_classes)


def save_tiny_teacher(path, seed=0):
    """A tiny ResNet teacher (:func:`tiny_resnet`) with weights drawn from ``seed``, saved
    as a state dict at ``path``; returns the path as a string."""
    from kdzoo.registry import MODELS
    torch.manual_seed(seed)
    torch.save(MODELS.build(tiny_resnet()).state_dict(), str(path))
    return str(path)


def cifar_cfg(name, data_root, work_dir, batch_size=16, max_epochs=1, per_class=None,
              progress_bar=False, **options):
    """Load configs/deit/<name>.py for a quick CPU run on ``data_root``.

    Data roots are redirected, workers off, the logger prints every iteration and
    ``per_class`` (if given) keeps that many training images of each class (a
    class-balanced ImageFolderSubset). ``options`` are merged with
    ``Config.merge_from_dict``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(config_path(name))
    cfg.work_dir = str(work_dir)
    # Unique per run: mmengine keys its logger and visualizer instances on this name.
    cfg.experiment_name = f'{name}_{uuid.uuid4().hex[:8]}'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is None:
            continue
        loader.dataset.data_root = str(data_root)
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = batch_size
    if per_class is not None:
        cfg.train_dataloader.dataset.per_class = per_class
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = max_epochs + 100  # no validation unless asked
    cfg.default_hooks.logger.interval = 1
    if not progress_bar:
        cfg.default_hooks.progress_bar.disable = True
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.merge_from_dict(options)
    return cfg


def build_runner(cfg):
    from kdzoo.engine import Runner
    return Runner.from_cfg(cfg)


def write_tiny_distill_config(path, data_root, teacher_checkpoint=None, per_class=2,
                              batch_size=10, max_epochs=1, extra=''):
    """A config file inheriting configs/deit/deit_ti_distilled_cifar10.py with a tiny
    student and teacher (randomly initialised unless ``teacher_checkpoint`` is given), the
    data at ``data_root`` and no worker processes."""
    import textwrap
    text = textwrap.dedent(f'''
        _base_ = [{config_path('deit_ti_distilled_cifar10')!r}]
        model = dict(
            student=dict(arch=None, embed_dim=32, num_heads=2, depth=2, drop_path_rate=0.0),
            teacher=dict(model=dict(depth=8, widths=(8, 16, 32)),
                         checkpoint={teacher_checkpoint!r},
                         random_init={teacher_checkpoint is None}))
        train_dataloader = dict(batch_size={batch_size}, num_workers=0,
                                persistent_workers=False,
                                dataset=dict(data_root={str(data_root)!r},
                                             per_class={per_class}))
        val_dataloader = dict(batch_size=25, num_workers=0, persistent_workers=False,
                              dataset=dict(data_root={str(data_root)!r}))
        test_dataloader = val_dataloader
        train_cfg = dict(max_epochs={max_epochs}, val_interval=100)
        default_hooks = dict(logger=dict(interval=1), progress_bar=dict(disable=True))
        env_cfg = dict(dist_cfg=dict(backend='gloo'))
    ''') + textwrap.dedent(extra)
    with open(path, 'w') as f:
        f.write(text)
    return str(path)
