"""tools/analysis/synthetic_set.py: teacher agreement and within-class spread of a
class-folder image set in the teacher's embedding."""
import importlib.util
import os
import os.path as osp
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CIFAR_CLASSES, CONFIGS, REPO, tiny_resnet
from kdzoo.registry import MODELS

torch.set_num_threads(1)
MICRO = osp.join(CONFIGS, 'dearkd', 'df_dearkd_micro_cifar10.py')


def tool():
    path = osp.join(REPO, 'tools', 'analysis', 'synthetic_set.py')
    spec = importlib.util.spec_from_file_location('kdzoo_analysis_synthetic_set', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spread_on_hand_made_embeddings():
    # class 0 on a line at 0, 1, 3; class 1 at 10, 10 (duplicates)
    features = torch.tensor([[0.], [1.], [3.], [10.], [10.]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    s = tool().spread(features, labels)
    # class 0: pairs 1, 3, 2 -> 2; class 1: 0
    assert s['pairwise'] == pytest.approx((2 + 0) / 2)
    # nearest same: class 0 (1, 1, 2) -> 4/3; class 1: 0
    assert s['nearest_same'] == pytest.approx((4 / 3 + 0) / 2)
    # nearest other: class 0 (10, 9, 7) -> 26/3; class 1: 7
    assert s['nearest_other'] == pytest.approx((26 / 3 + 7) / 2)
    # every image's nearest neighbour is of its class
    assert s['nn_same_class'] == 100.0
    # normalised, class 0 is 0 (zero vector), 1, 1 -> pairs 1, 1, 0; class 1: 0
    assert s['pairwise_normalized'] == pytest.approx((2 / 3 + 0) / 2)
    # image 2 at 3 moves next to class 1: its nearest neighbour is of another class
    s = tool().spread(torch.tensor([[0.], [1.], [9.], [10.], [10.]]), labels)
    assert s['nn_same_class'] == pytest.approx(80.0)


def write_set(root, per_class, seed, scale):
    rng = np.random.default_rng(seed)
    for name in CIFAR_CLASSES:
        os.makedirs(osp.join(root, name))
        base = rng.integers(0, 256, (32, 32, 3))
        for i in range(per_class):
            noise = rng.normal(0, scale, (32, 32, 3))
            img = np.clip(base + noise, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(osp.join(root, name, f'{i:03d}.png'))


def test_tool_ranks_a_varied_set_above_near_duplicates(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / 'teacher.pth'
    torch.save(MODELS.build(tiny_resnet()).state_dict(), ckpt)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = [{MICRO!r}]
        model = dict(teacher=dict(model=dict(depth=8, widths=(8, 16, 32)),
                                  checkpoint={str(ckpt)!r}))
    '''))
    varied, duplicates = str(tmp_path / 'varied'), str(tmp_path / 'duplicates')
    write_set(varied, 4, seed=0, scale=80.0)
    write_set(duplicates, 4, seed=0, scale=2.0)
    out = tmp_path / 'spread.json'
    results = tool().main([str(cfg), '--dirs', varied, duplicates, '--per-class', '3',
                           '--out', str(out)])
    assert results[varied]['images'] == results[duplicates]['images'] == 30
    assert results[varied]['pairwise'] > 3 * results[duplicates]['pairwise']
    assert results[varied]['nearest_same'] > results[duplicates]['nearest_same']
    assert 0 <= results[varied]['teacher_top1'] <= 100
    assert results[varied]['bn'] is None  # no manifest: not a tools/synthesize.py output
    assert out.exists() and varied in capsys.readouterr().out


def test_bad_input_is_refused_before_the_teacher_is_built(tmp_path, capsys):
    t = tool()
    with pytest.raises(SystemExit, match='--per-class must be >= 2'):
        t.main([MICRO, '--per-class', '1'])
    with pytest.raises(SystemExit) as info:  # a usage error, before any work
        t.main([str(tmp_path / 'missing.py')])
    assert info.value.code == 2 and 'does not exist' in capsys.readouterr().err
    with pytest.raises(SystemExit, match="has no folder for the classes"):
        t.main([MICRO, '--dirs', str(tmp_path)])  # the teacher checkpoint is not needed
