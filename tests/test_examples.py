"""The worked examples of README.md: similarity-preserving distillation and DKD from the
package, each in one config (configs/examples/sp_micro_cifar10.py,
configs/examples/dkd_micro_cifar10.py), and timm students with hidden terms; each trains a
few iterations through tools/train.py."""
import os.path as osp
import re
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config

import kdzoo  # noqa: F401
from conftest import CONFIGS, load_tool, tiny_resnet
from kdzoo.registry import MODELS

TINY_DEIT = dict(arch=None, embed_dim=32, num_heads=2, depth=2, drop_path_rate=0.0)


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def reference_sp(fs, ft):
    def gram(f):
        a = f.reshape(f.shape[0], -1)
        g = a @ a.T
        return g / np.linalg.norm(g, axis=1, keepdims=True)
    return np.sum((gram(fs) - gram(ft)) ** 2) / fs.shape[0] ** 2


def test_sp_example_uses_the_packages_loss_and_it_matches_its_definition():
    from kdzoo.losses.similarity_preserving import SPLoss
    cfg = Config.fromfile(osp.join(CONFIGS, 'examples', 'sp_micro_cifar10.py'))
    assert 'custom_imports' not in cfg
    term = cfg.model.distill.sp
    assert term.weight == 3000.0 and dict(term.inputs) == dict(
        student_features='student.blocks.1', teacher_features='teacher.layer2')
    loss = MODELS.build(term.loss)
    assert type(loss) is SPLoss
    g = torch.Generator().manual_seed(0)
    tokens, maps = torch.randn(5, 17, 8, generator=g), torch.randn(5, 4, 3, 3, generator=g)
    expected = reference_sp(tokens.double().numpy(), maps.double().numpy())
    assert loss(tokens, maps).item() == pytest.approx(expected, rel=1e-4)
    assert loss(tokens, tokens).item() == pytest.approx(0.0, abs=1e-7)
    # the name of the example loss kdzoo shipped before still builds, with the same values
    old = MODELS.build(dict(type='SimilarityPreservingLoss'))
    assert isinstance(old, SPLoss) and torch.equal(old(tokens, maps), loss(tokens, maps))


def tiny_example(name, data_root, work_dir, student, **model):
    """configs/examples/<name>.py with a tiny teacher, the ``student`` settings merged in, no
    teacher weights and 10 images."""
    cfg = Config.fromfile(osp.join(CONFIGS, 'examples', f'{name}.py'))
    cfg.model.student.update(student)
    cfg.model.teacher.update(model=tiny_resnet(), checkpoint=None, random_init=True)
    cfg.merge_from_dict(dict(model=model))
    cfg.train_dataloader.update(batch_size=6, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=data_root, per_class=1)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.progress_bar.disable = True
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{name}_{uuid.uuid4().hex[:8]}'
    return cfg


def train_and_read_terms(cfg, tmp_path):
    """Train through tools/train.py; return {loss key: [values per logged iteration]}."""
    path = tmp_path / f'{cfg.experiment_name}.py'
    cfg.dump(str(path))
    runner = load_tool('train').main([str(path)])
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        log = f.read()
    terms = {}
    for key, value in re.findall(r'(loss_\w+): (\S+)', log):
        terms.setdefault(key, []).append(float(value))
    assert all(np.isfinite(v).all() for v in terms.values())
    return runner, terms


CASES = {
    'dkd_micro_cifar10': (TINY_DEIT, {}, {'loss_cls', 'loss_dkd'}),
    'sp_micro_cifar10': (TINY_DEIT, {}, {'loss_cls', 'loss_distill', 'loss_sp'}),
    'timm_vit_hidden_cifar10': (
        dict(embed_dim=32, depth=2, num_heads=2),
        dict(distill=dict(hidden_layer3=dict(inputs=dict(student_features='student.blocks.1')))),
        {'loss_cls', 'loss_distill', 'loss_hidden_layer3'}),
    'timm_resnet18_fitnet_cifar10': (
        {}, {}, {'loss_cls', 'loss_distill', 'loss_hint'}),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_example_trains_through_tools_train_and_logs_its_terms(name, cifar_tiny, tmp_path):
    student, model, expected = CASES[name]
    cfg = tiny_example(name, cifar_tiny, tmp_path / 'run', student, **model)
    runner, terms = train_and_read_terms(cfg, tmp_path)
    assert set(terms) == expected
    assert all(len(v) == 2 for v in terms.values())  # 10 images, batch 5
    assert set(runner.model.terms) == {k[len('loss_'):] for k in expected} - {'cls'}


def test_timm_students_are_the_timm_models_with_filled_in_connectors():
    from kdzoo.apis import build_model
    vit = build_model(osp.join(CONFIGS, 'examples', 'timm_vit_hidden_cifar10.py'),
                      teacher_weights=False)
    aligner = vit.terms.hidden_layer3.connectors.student_features
    assert type(vit.student).__name__ == 'VisionTransformer'
    assert (aligner.num_prefix_tokens, aligner.dwconv.in_channels, aligner.proj.out_channels) \
        == (1, 192, 64)
    cnn = build_model(osp.join(CONFIGS, 'examples', 'timm_resnet18_fitnet_cifar10.py'),
                      teacher_weights=False)
    connector = cnn.terms.hint.connectors.student_features
    assert type(cnn.student).__name__ == 'ResNet'
    assert (connector.conv.in_channels, connector.conv.out_channels) == (64, 64)
