"""A user's own distillation loss, in their own module, plugged in by config alone
(custom_imports + model.distill_loss), as a user of kdzoo would do it."""
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings
from mmpretrain.structures import DataSample

from conftest import config_path, load_tool
from kdzoo.registry import MODELS

USER_MODULE = 'kdzoo_test_user_losses'
USER_LOSS = 'MyL1LogitLoss'

LOSS_SOURCE = f'''
import torch.nn as nn

from kdzoo.registry import MODELS


@MODELS.register_module()
class {USER_LOSS}(nn.Module):
    """scale * mean absolute difference of student and teacher logits."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def forward(self, student_logits, teacher_logits):
        return self.scale * (student_logits - teacher_logits).abs().mean()
'''


def user_formula(student, teacher, scale):
    return scale * (student.double() - teacher.double()).abs().sum() / student.numel()


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A folder, first on sys.path, holding the user's loss module; the module and its
    registry entry are removed again afterwards."""
    (tmp_path / f'{USER_MODULE}.py').write_text(LOSS_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert USER_MODULE not in sys.modules
    yield tmp_path
    sys.modules.pop(USER_MODULE, None)
    MODELS._module_dict.pop(USER_LOSS, None)


def write_user_config(folder, data_root, work_dir, scale=2.0, alpha=0.4,
                      module=USER_MODULE):
    text = textwrap.dedent(f'''
        _base_ = [{config_path('deit_ti_distilled_cifar10')!r}]
        custom_imports = dict(imports=[{module!r}], allow_failed_imports=False)
        work_dir = {str(work_dir)!r}
        model = dict(
            student=dict(arch=None, embed_dim=32, num_heads=2, depth=2, drop_path_rate=0.0),
            teacher=dict(model=dict(depth=8, widths=(8, 16, 32)), checkpoint=None,
                         random_init=True),
            distill_loss=dict(_delete_=True, type={USER_LOSS!r}, scale={scale}),
            alpha={alpha})
        train_dataloader = dict(batch_size=10, num_workers=0, persistent_workers=False,
                                dataset=dict(data_root={str(data_root)!r}, per_class=2))
        val_dataloader = dict(num_workers=0, persistent_workers=False,
                              dataset=dict(data_root={str(data_root)!r}))
        test_dataloader = val_dataloader
        train_cfg = dict(max_epochs=1, val_interval=100)
        default_hooks = dict(logger=dict(interval=1), progress_bar=dict(disable=True))
    ''')
    path = folder / 'my_distill_config.py'
    path.write_text(text)
    return str(path)


def tiny_batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    samples = [DataSample().set_gt_label(int(y))
               for y in torch.randint(0, 10, (n,), generator=g)]
    return x, samples


def check_user_loss_in_model(model, scale, alpha):
    user_cls = sys.modules[USER_MODULE].__dict__[USER_LOSS]
    assert isinstance(model.terms.distill.loss, user_cls)
    assert model.terms.distill.loss.scale == scale
    model.train()
    x, samples = tiny_batch()
    losses = model.loss(x, samples)
    assert set(losses) == {'loss_cls', 'loss_distill'}
    _, dist = model.student.forward_heads(x)
    teacher = model.teacher_logits(x)
    want = alpha * user_formula(dist, teacher, scale)
    assert losses['loss_distill'].item() == pytest.approx(want.item(), rel=1e-5)


def test_custom_imports_register_user_loss(user_dir, cifar_tiny, tmp_path):
    path = write_user_config(user_dir, cifar_tiny, tmp_path / 'work')
    cfg = Config.fromfile(path, import_custom_modules=False)
    assert USER_MODULE not in sys.modules and USER_LOSS not in MODELS
    # What mmengine does with custom_imports before anything is built.
    import_modules_from_strings(**cfg.custom_imports)
    assert USER_LOSS in MODELS
    assert cfg.model.distill_loss == dict(type=USER_LOSS, scale=2.0)
    model_cfg = cfg.model
    model_cfg.data_preprocessor = cfg.data_preprocessor
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    check_user_loss_in_model(model, scale=2.0, alpha=0.4)


def test_user_loss_trains_through_tools_train(user_dir, cifar_tiny, tmp_path):
    path = write_user_config(user_dir, cifar_tiny, tmp_path / 'work', scale=0.5, alpha=0.7)
    train = load_tool('train')
    runner = train.main([path, '--cfg-options', 'randomness.seed=0'])
    assert runner.iter == 2  # 2 images x 10 classes at batch 10
    model = runner.model
    check_user_loss_in_model(model, scale=0.5, alpha=0.7)
    scalars = runner.message_hub.log_scalars
    assert 'train/loss_distill' in scalars and 'train/loss_cls' in scalars
    assert len(scalars['train/loss_distill'].data[0]) == 2


def test_missing_user_module_fails_loudly(user_dir, cifar_tiny, tmp_path):
    path = write_user_config(user_dir, cifar_tiny, tmp_path / 'work',
                             module='kdzoo_test_no_such_module')
    with pytest.raises(ImportError, match='kdzoo_test_no_such_module'):
        Config.fromfile(path)


def test_unregistered_loss_name_is_reported(cifar_tiny, tmp_path):
    cfg = Config.fromfile(config_path('deit_ti_distilled_cifar10'))
    cfg.model.teacher.update(checkpoint=None, random_init=True)
    cfg.model.distill_loss = dict(type='NoSuchLogitLoss')
    with pytest.raises(KeyError, match='NoSuchLogitLoss'):
        MODELS.build(cfg.model)
