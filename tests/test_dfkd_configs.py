"""DF-DearKD configs: the paper's synthesis settings, training on the synthetic folder with
real validation data, the no-divergence variant, the ImageNet settings run on a small timm
RegNetY, and the model-zoo entries."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import CIFAR_CLASSES, CONFIGS, REPO, load_tool
from kdzoo.apis import SYNTHESIS_KEYS, input_normalisation
from kdzoo.registry import MODELS

torch.set_num_threads(1)
# (config, base, real data root, teacher model, sizes, iterations)
DF = [
    ('df_dearkd_ti', 'dearkd_ti', 'data/imagenet', 'timm:regnety_160', [112, 224], [2000, 2000]),
    ('df_dearkd_s', 'dearkd_s', 'data/imagenet', 'timm:regnety_160', [112, 224], [2000, 2000]),
    ('df_dearkd_ti_cifar10', 'dearkd_ti_cifar10', 'data/cifar10', 'CifarResNet', [16, 32],
     [2000, 2000]),
    ('df_dearkd_micro_cifar10', 'dearkd_micro_cifar10', 'data/cifar10', 'CifarResNet',
     [16, 32], [100, 100]),
    ('df_dearkd_micro_cifar10_no_div', 'dearkd_micro_cifar10', 'data/cifar10', 'CifarResNet',
     [16, 32], [100, 100]),
    ('df_dearkd_micro_cifar10_2k', 'dearkd_micro_cifar10', 'data/cifar10', 'CifarResNet',
     [16, 32], [150, 150]),
    ('df_dearkd_micro_cifar10_2k_no_div', 'dearkd_micro_cifar10', 'data/cifar10',
     'CifarResNet', [16, 32], [150, 150]),
    ('df_dearkd_micro_cifar10_2k_alpha5', 'dearkd_micro_cifar10', 'data/cifar10',
     'CifarResNet', [16, 32], [150, 150]),
]


def load(name):
    return Config.fromfile(osp.join(CONFIGS, 'dearkd', f'{name}.py'))


@pytest.mark.parametrize('name,base,real_root,teacher,sizes,iterations', DF,
                         ids=[c[0] for c in DF])
def test_df_config(name, base, real_root, teacher, sizes, iterations):
    cfg, ref = load(name), load(base)
    syn = cfg.synthesis
    assert set(syn) <= set(SYNTHESIS_KEYS)
    s = syn.synthesizer
    assert [st['size'] for st in s.stages] == sizes
    assert [st['iterations'] for st in s.stages] == iterations
    assert (s.alpha_tv, s.alpha_l2, s.alpha_bn) == (1e-4, 1e-5, 5e-2)
    if name.endswith('no_div'):
        assert s.diversity is None
    else:
        alpha_ep = 5.0 if name.endswith('alpha5') else 50.0
        assert (s.diversity.alpha_ep, s.diversity.alpha_triplet) == (alpha_ep, 0.5)
    assert s.feature_layer == ('head.fc' if teacher.startswith('timm') else 'fc')
    model = cfg.model.teacher.model
    assert (model if isinstance(model, str) else model['type']) == teacher
    if 'cifar10' in name:
        assert cfg.model.teacher.checkpoint == 'work_dirs/resnet20_cifar10'
        assert list(cfg.classes) == list(CIFAR_CLASSES)
    else:
        assert cfg.model.teacher.checkpoint == \
            'https://dl.fbaipublicfiles.com/deit/regnety_160-a5fe301d.pth'
    # the student and its recipe are the DearKD config's; only the training images differ
    assert cfg.model.student == ref.model.student
    assert cfg.model.distill == ref.model.distill
    train = cfg.train_dataloader.dataset
    assert (train.data_root, train.data_prefix) == (syn.out, '')
    assert train.get('subset_ratio', 1.0) == 1.0
    assert cfg.val_dataloader.dataset.data_root == real_root
    assert cfg.val_dataloader.dataset.data_root != syn.out


@pytest.mark.parametrize('name,variant', [('df_dearkd_micro_cifar10', 'no_div'),
                                          ('df_dearkd_micro_cifar10_2k', 'no_div'),
                                          ('df_dearkd_micro_cifar10_2k', 'alpha5')])
def test_each_variant_writes_its_own_folder(name, variant):
    assert load(f'{name}_{variant}').synthesis.out != load(name).synthesis.out


def test_the_2k_set_keeps_the_students_step_budget():
    small, large = load('df_dearkd_micro_cifar10'), load('df_dearkd_micro_cifar10_2k')
    assert large.synthesis.num_images == 2 * small.synthesis.num_images == 2000
    steps = [-(-c.synthesis.num_images // c.train_dataloader.batch_size) * c.train_cfg.max_epochs
             for c in (small, large)]
    assert steps == [800, 800]


def test_imagenet_synthesis_settings_run_on_a_small_regnety():
    """The ImageNet synthesizer config (loss weights, diversity on head.fc's input,
    BatchNormAct2d layers) on timm's smallest RegNetY at a small size, 1 + 1 iterations."""
    import timm
    cfg = load('df_dearkd_ti')
    s = dict(cfg.synthesis.synthesizer)
    s['mean'], s['std'] = input_normalisation(cfg, cfg.model.teacher, s)
    s['stages'] = [dict(size=32, iterations=1, jitter=2), dict(size=64, iterations=1, jitter=4)]
    synthesizer = MODELS.build(s)
    torch.manual_seed(0)
    net = timm.create_model('regnety_002', pretrained=False, num_classes=8).eval()
    result = synthesizer.synthesize(net, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    assert result.images.shape == (8, 3, 64, 64)
    assert len(synthesizer.bn_loss.layer_names) > 10 and result.losses['bn'][0] > 0
    assert result.losses['diversity'].ne(0).all()
    assert torch.isfinite(result.losses['total']).all()


def test_model_zoo_lists_the_df_configs_with_their_students_size():
    zoo = load_tool('model_zoo')
    family = osp.join(REPO, 'configs', 'dearkd')
    meta = zoo.load_metafile(osp.join(family, 'metafile.yml'))
    by_config = {m['Config']: m for m in meta['Models']}
    for name, base, *_ in DF:
        df = by_config[f'configs/dearkd/{name}.py']['Metadata']
        real = by_config[f'configs/dearkd/{base}.py']['Metadata']
        assert (df['Parameters'], df['FLOPs']) == (real['Parameters'], real['FLOPs'])
    with open(osp.join(family, 'README.md')) as f:
        text = f.read()
    assert zoo.updated_readme(text, zoo.render_table(meta), 'README.md') == text
