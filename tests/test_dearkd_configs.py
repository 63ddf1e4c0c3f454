"""configs/dearkd: every config builds and runs one training forward; the model zoo table
is up to date."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

from conftest import CONFIGS, REPO, load_tool
from kdzoo.models.students.mhca import MHCA
from kdzoo.registry import MODELS

torch.set_num_threads(1)

# (config, student width, heads, switch epoch, max epochs, image size, hidden term)
IMAGENET = [
    ('dearkd_ti', 192, 12, 250, 300, 224, 'loss_hidden_s3'),
    ('dearkd_s', 384, 12, 250, 300, 224, 'loss_hidden_s3'),
    ('dearkd_b', 768, 16, 250, 300, 224, 'loss_hidden_s3'),
    ('dearkd_ti_1000e', 192, 12, 800, 1000, 224, 'loss_hidden_s3'),
]
CIFAR = [
    ('dearkd_ti_cifar10', 192, 12, 83, 100, 32, 'loss_hidden_layer3'),
    ('dearkd_micro_cifar10', 128, 8, 17, 20, 32, 'loss_hidden_layer3'),
]


def load(name):
    return Config.fromfile(osp.join(CONFIGS, 'dearkd', f'{name}.py'))


@pytest.mark.parametrize('name,width,heads,switch,epochs,size,hidden', IMAGENET + CIFAR,
                         ids=[c[0] for c in IMAGENET + CIFAR])
def test_config_builds_and_runs_one_step(name, width, heads, switch, epochs, size, hidden):
    cfg = load(name)
    cfg.model.teacher.update(checkpoint=None, random_init=True)
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    net = model.student
    assert net.embed_dim == width and net.blocks[0].attn.num_heads == heads
    assert isinstance(net.blocks[0].attn, MHCA) and net.distilled
    assert cfg.train_cfg.max_epochs == epochs
    hook = cfg.default_hooks.distill_stage
    assert hook.type == 'DistillStageHook'
    resolved = hook.get('switch_epoch')
    if resolved is None:
        resolved = int(round(hook.switch_ratio * epochs))
    assert resolved == switch
    cosine = cfg.param_scheduler[-1]
    assert cosine.end == epochs
    assert '.rel_pos_weight' in cfg.optim_wrapper.paramwise_cfg.custom_keys
    x = torch.randn(1, 3, size, size)
    losses = model.loss(x, [DataSample().set_gt_label(3)])
    assert set(losses) == {'loss_cls', 'loss_distill', hidden}
    assert all(torch.isfinite(v) for v in losses.values())


def test_model_zoo_table_is_current():
    zoo = load_tool('model_zoo')
    family = osp.join(REPO, 'configs', 'dearkd')
    meta = zoo.load_metafile(osp.join(family, 'metafile.yml'))
    listed = {m['Config'] for m in meta['Models']}
    expected = {f'configs/dearkd/{c[0]}.py' for c in IMAGENET + CIFAR}
    # The 100%-data variant of the micro config: tests/test_cifar_budget.py.
    expected.add('configs/dearkd/dearkd_micro_cifar10_full.py')
    # The equal-epoch data-efficiency student: tests/test_study_configs.py.
    expected.add('configs/dearkd/dearkd_micro_cifar10_2e.py')
    # The DF-DearKD configs of the same family are listed too (tests/test_dfkd_configs.py).
    assert {c for c in listed if not osp.basename(c).startswith('df_')} == expected
    with open(osp.join(family, 'README.md')) as f:
        text = f.read()
    assert zoo.updated_readme(text, zoo.render_table(meta), 'README.md') == text
