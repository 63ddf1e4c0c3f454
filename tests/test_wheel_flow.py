"""The README's flow for people who install kdzoo from the package index, run as they
would: the wheel built from this checkout, installed into a new virtual environment, and
every step a ``kdzoo`` command run from an empty folder outside the checkout.

The new environment gets kdzoo from the wheel only. Its dependencies (torch, timm,
mmengine, ...) are the ones this suite runs with, made visible through a ``.pth`` file
instead of being downloaded again (several GB); ``importlib.metadata`` then finds every
requirement of the wheel satisfied, which the test checks, and the test checks that
``kdzoo`` is imported from the new environment, never from the checkout.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

# Keep the tiny runs tiny: 100 training images at batch 20 (5 steps), 10 test images per
# class, no worker processes.
FAST = ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=20',
        'train_dataloader.dataset.subset_ratio=0.02', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False', 'val_dataloader.dataset.per_class=10',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        'test_dataloader.dataset.per_class=10']


@pytest.fixture(scope='module')
def venv(kdzoo_wheel, tmp_path_factory):
    """A new virtual environment with the wheel installed; returns its bin folder."""
    root = tmp_path_factory.mktemp('venv')
    subprocess.run([sys.executable, '-m', 'venv', str(root)], check=True, timeout=300)
    purelib = subprocess.run(
        [str(root / 'bin' / 'python'), '-c', 'import sysconfig; '
         'print(sysconfig.get_paths()["purelib"])'], check=True, capture_output=True,
        text=True).stdout.strip()
    # The suite's own packages, after the new environment's (kdzoo comes from the wheel).
    deps = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}
    with open(osp.join(purelib, '_kdzoo_test_dependencies.pth'), 'w') as f:
        f.write('\n'.join(sorted(deps)) + '\n')
    subprocess.run([str(root / 'bin' / 'python'), '-m', 'pip', 'install', '-q', '--no-deps',
                    '--no-index', kdzoo_wheel], check=True, capture_output=True, text=True,
                   timeout=300)
    return root / 'bin'


@pytest.fixture(scope='module')
def user_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('new_user')


def kdzoo(venv, cwd, *args, ok=True, timeout=600):
    """Run ``kdzoo ARGS`` from the new environment in ``cwd``; returns (rc, output)."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(PATH=f'{venv}{os.pathsep}{env.get("PATH", "")}', PYTHONNOUSERSITE='1',
               TORCH_HOME=str(cwd / '.torch'), OMP_NUM_THREADS='1', PYTHONWARNINGS='')
    proc = subprocess.run([str(venv / 'kdzoo'), *args], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)
    if ok:
        assert proc.returncode == 0, f'kdzoo {" ".join(args)} failed:\n{proc.stdout[-4000:]}'
    return proc.returncode, proc.stdout


def run_python(venv, cwd, code):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(PYTHONNOUSERSITE='1', OMP_NUM_THREADS='1')
    proc = subprocess.run([str(venv / 'python'), '-c', textwrap.dedent(code)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_the_environment_runs_the_wheel_not_the_checkout(venv, user_dir):
    out = run_python(venv, user_dir, '''
        import importlib.metadata as md, json, kdzoo
        from packaging.requirements import Requirement
        unmet = []
        for text in md.requires('kdzoo') or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({'extra': ''}):
                continue
            try:
                version = md.version(req.name)
            except md.PackageNotFoundError:
                unmet.append(text)
                continue
            if not req.specifier.contains(version, prereleases=True):
                unmet.append(f'{text} (found {version})')
        print(json.dumps(dict(file=kdzoo.__file__, unmet=unmet)))
    ''')
    info = json.loads(out.strip().splitlines()[-1])
    assert info['file'].startswith(str(venv.parent)), info['file']
    assert not info['file'].startswith(REPO)
    assert info['unmet'] == []
    rc, version = kdzoo(venv, user_dir, '--version')
    assert version.strip().startswith('kdzoo ')


def test_the_readme_flow_from_an_empty_folder(venv, user_dir):
    assert os.listdir(user_dir) == []
    # 1. Before the data exists: one clear line that names the command that makes it.
    rc, out = kdzoo(venv, user_dir, 'train', 'deit_micro_cifar10', ok=False)
    assert rc != 0 and 'Traceback' not in out, out[-3000:]
    assert "'data/cifar10/train' does not exist" in out and 'kdzoo prepare-cifar10' in out

    # 2. The data, where the configs read it.
    kdzoo(venv, user_dir, 'prepare-cifar10')
    assert sorted(os.listdir(user_dir / 'data' / 'cifar10' / 'train'))[0] == 'airplane'

    # 3. A few iterations of a shipped config, by name; then test and export it.
    rc, out = kdzoo(venv, user_dir, 'train', 'deit_micro_cifar10', '--work-dir',
                    'work_dirs/micro', '--cfg-options', *FAST)
    ckpt = user_dir / 'work_dirs' / 'micro' / 'epoch_1.pth'
    assert ckpt.is_file(), out[-3000:]
    rc, out = kdzoo(venv, user_dir, 'test', 'deit_micro_cifar10', str(ckpt),
                    '--cfg-options', *FAST[-3:])
    assert 'joint classifier' in out and 'top-1 (%)' in out
    kdzoo(venv, user_dir, 'export', 'deit_micro_cifar10', str(ckpt), '--to', 'kdzoo',
          '--out', 'student.pth')
    assert (user_dir / 'student.pth').is_file()

    # 4. Inference on a JPEG that is not 32x32 and on a folder.
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (53, 71, 3), dtype=np.uint8)).save(
        user_dir / 'cat.jpg')
    (user_dir / 'photos' / 'more').mkdir(parents=True)
    for i, (h, w) in enumerate(((32, 32), (90, 120))):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            user_dir / 'photos' / 'more' / f'img{i}.jpg')
    rc, out = kdzoo(venv, user_dir, 'infer', 'student.pth', '-', 'cat.jpg', 'photos')
    for name in ('cat.jpg', 'img0.jpg', 'img1.jpg'):
        assert name in out, out[-3000:]
    classes = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
               'ship', 'truck')
    rows = [ln for ln in out.splitlines() if any(ln.lstrip().startswith(p) for p in (
        'cat.jpg', 'photos'))]
    assert len(rows) == 3 and all(any(c in r for c in classes) for r in rows), out[-3000:]
    out = run_python(venv, user_dir, '''
        import kdzoo
        model = kdzoo.get_model('student.pth')
        result = kdzoo.inference_model(model, 'cat.jpg')
        print(result['pred_class'], round(float(result['pred_scores'].sum()), 4))
    ''')
    pred_class, total = out.split()[-2:]
    assert pred_class in classes and float(total) == pytest.approx(1.0, abs=1e-3)

    # 5. A config of the user's own that inherits a shipped one by its kdzoo:: name.
    (user_dir / 'my_micro.py').write_text(textwrap.dedent('''
        _base_ = ['kdzoo::deit/deit_micro_cifar10.py']
        model = dict(student=dict(embed_dim=64, num_heads=2))
    '''))
    rc, out = kdzoo(venv, user_dir, 'train', 'my_micro.py', '--work-dir', 'work_dirs/mine',
                    '--cfg-options', *FAST)
    state = run_python(venv, user_dir, '''
        from kdzoo.models.checkpoint import read_checkpoint  # weights_only=True
        sd = read_checkpoint('work_dirs/mine/epoch_1.pth')['state_dict']
        print(sd['student.cls_token'].shape[-1])
    ''')
    assert state.split()[-1] == '64'
