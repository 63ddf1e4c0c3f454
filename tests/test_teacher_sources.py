"""Where a teacher's weights come from: a file, a URL (downloaded once into torch.hub's
cache, hash checked), a source's pretrained weights, or an explicit random_init; a
teacher that names none is refused, also through tools/train.py. Nothing here touches the
network: downloads are file:// URLs or stand-ins for torch.hub's downloader. Also: a wrong
source name (``teacher.logit``) is answered with the closest valid ones."""
import hashlib
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from kdzoo.models import Teacher
from kdzoo.registry import MODELS
from conftest import REPO, config_path, tiny_deit, tiny_resnet


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    return home


@pytest.fixture
def downloads(monkeypatch):
    """The URLs torch.hub's downloader is called with (it still runs)."""
    calls = []
    real = torch.hub.download_url_to_file

    def counting(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        return real(url, dst, hash_prefix, progress)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', counting)
    return calls


def saved_resnet(folder, name, seed=0):
    """A tiny ResNet's state dict saved as ``folder/name``: (path, state dict)."""
    torch.manual_seed(seed)
    state = MODELS.build(tiny_resnet()).state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    torch.save(state, path)
    return path, state


def assert_weights(teacher, state):
    got = teacher.model.state_dict()
    assert set(got) == set(state)
    assert all(torch.equal(got[k], state[k]) for k in state)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- URLs

def test_a_file_url_is_downloaded_once_into_the_hub_cache(tmp_path, torch_home, downloads):
    path, state = saved_resnet(tmp_path / 'published', 'teacher.pth')
    url = path.as_uri()
    first = Teacher(tiny_resnet(), checkpoint=url)
    cached = torch_home / 'hub' / 'checkpoints' / 'teacher.pth'
    assert cached.is_file() and first.checkpoint == str(cached)
    assert_weights(first, state)
    second = MODELS.build(dict(type='Teacher', model=tiny_resnet(), checkpoint=url))
    assert_weights(second, state)
    assert downloads == [(url, None)]  # no hash in the name: none checked


def test_a_hash_in_the_file_name_is_checked(tmp_path, torch_home, downloads):
    path, state = saved_resnet(tmp_path / 'published', 'teacher.pth')
    digest = sha256(path)
    named = path.rename(path.with_name(f'teacher-{digest[:8]}.pth'))
    teacher = Teacher(tiny_resnet(), checkpoint=named.as_uri())
    assert_weights(teacher, state)
    assert downloads == [(named.as_uri(), digest[:8])]


def test_a_wrong_hash_is_refused_and_nothing_is_cached(tmp_path, torch_home):
    path, _ = saved_resnet(tmp_path / 'published', 'teacher.pth')
    wrong = '0' * 8 if not sha256(path).startswith('0' * 8) else 'f' * 8
    named = path.rename(path.with_name(f'teacher-{wrong}.pth'))
    url = named.as_uri()
    with pytest.raises(RuntimeError, match='SHA-256') as info:
        Teacher(tiny_resnet(), checkpoint=url)
    assert url in str(info.value)
    cache = torch_home / 'hub' / 'checkpoints'
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_url_to_a_missing_file_names_the_url(tmp_path, torch_home):
    url = (tmp_path / 'nowhere' / 'teacher.pth').as_uri()
    with pytest.raises(OSError, match='cannot download the checkpoint ' + url):
        Teacher(tiny_resnet(), checkpoint=url)


def test_a_local_file_still_loads(tmp_path):
    path, state = saved_resnet(tmp_path, 'local.pth', seed=3)
    teacher = Teacher(tiny_resnet(), checkpoint=str(path))
    assert_weights(teacher, state)
    assert teacher.has_weights


# --------------------------------------------------------------- pretrained weights

def test_timm_pretrained_asks_timm_for_its_weights(monkeypatch):
    import timm.models._builder as builder
    asked = []

    def fake_load_pretrained(model, pretrained_cfg=None, **kwargs):
        asked.append(pretrained_cfg['architecture'])
        for p in model.parameters():
            p.data.fill_(0.5)

    monkeypatch.setattr(builder, 'load_pretrained', fake_load_pretrained)
    teacher = Teacher('timm:test_resnet', pretrained=True)
    assert asked == ['test_resnet']
    assert all(bool((p == 0.5).all()) for p in teacher.model.parameters())
    assert teacher.pretrained and teacher.checkpoint is None and teacher.has_weights
    # Published weights keep their head: another class count is refused.
    with pytest.raises(ValueError, match='predict 1000 classes, num_classes=10'):
        Teacher('timm:test_resnet', pretrained=True, num_classes=10)


def fake_downloader(monkeypatch, state):
    """torch.hub's downloader replaced by one that writes ``state`` (mmengine format) and
    records the URL."""
    urls = []

    def download(url, dst, hash_prefix=None, progress=True):
        urls.append(url)
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    return urls


def shifted(state):
    return {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}


def test_torchvision_pretrained_loads_its_default_weights(monkeypatch, torch_home):
    import torchvision
    want = shifted(torchvision.models.get_model('resnet18').state_dict())
    urls = fake_downloader(monkeypatch, want)
    teacher = Teacher('torchvision:resnet18', pretrained=True)
    assert urls == [torchvision.models.ResNet18_Weights.DEFAULT.url]
    assert_weights(teacher, want)


def test_mmpretrain_pretrained_loads_the_weights_of_its_model_index(monkeypatch, torch_home):
    from mmpretrain import get_model
    from mmpretrain.apis import ModelHub
    name = 'resnet18_8xb32_in1k'
    want = shifted(get_model(name).state_dict())
    urls = fake_downloader(monkeypatch, dict(state_dict=want, meta=dict()))
    teacher = Teacher(f'mmpretrain:{name}', pretrained=True)
    assert urls == [ModelHub.get(name).weights]
    assert_weights(teacher, want)


# ------------------------------------------------------------ naming the weights

@pytest.mark.parametrize('kwargs, match', [
    (dict(), 'names no weights.*random_init=True'),
    (dict(checkpoint='a.pth', pretrained=True), 'checkpoint and pretrained exclude'),
    (dict(checkpoint='a.pth', random_init=True), 'checkpoint and random_init exclude'),
    (dict(pretrained=True, random_init=True), 'pretrained and random_init exclude'),
])
def test_a_teacher_names_exactly_one_source_of_weights(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Teacher('timm:test_resnet', **kwargs)


def test_pretrained_needs_a_source_name():
    with pytest.raises(ValueError, match='"SOURCE:NAME"'):
        Teacher(tiny_resnet(), pretrained=True)


def test_random_init_is_explicit():
    teacher = Teacher(tiny_resnet(), random_init=True)
    assert teacher.checkpoint is None and not teacher.pretrained and not teacher.has_weights


def test_train_refuses_a_teacher_without_weights(tmp_path, cifar_tiny):
    config = tmp_path / 'no_teacher_weights.py'
    config.write_text(textwrap.dedent(f'''
        _base_ = [{config_path('deit_micro_distilled_cifar10')!r}]
        model = dict(teacher=dict(checkpoint=None))
        data = dict(dataset=dict(data_root={cifar_tiny!r}))  # the data is checked first
        train_dataloader = val_dataloader = test_dataloader = data
    '''))
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(config),
         '--work-dir', str(tmp_path / 'work')],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'names no weights' in proc.stderr
    for fix in ('model.teacher.checkpoint', 'pretrained=True', 'random_init=True'):
        assert fix in proc.stderr


# ----------------------------------------------------------------------------- source names
def distiller_reading(source):
    """A tiny Distiller with one soft-distillation term whose teacher_logits read
    ``source``."""
    return dict(type='Distiller', student=tiny_deit(),
                teacher=dict(type='Teacher', random_init=True, model=tiny_resnet()),
                data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10),
                distill_loss=None,
                distill=dict(kd=dict(loss=dict(type='SoftDistillLoss'),
                                     inputs=dict(teacher_logits=source))))


@pytest.mark.parametrize('source, suggested', [
    ('teacher.logit', "'teacher.logits'"),         # read as a layer of the teacher
    ('student.logit', "'student.logits'"),         # read as a layer of the student
    ('student.cls_logit', "'student.cls_logits'"),
    ('teachr.logits', "'teacher.logits'"),         # no such network
    ('labls', "'labels'"),
    ('teacher.layr3', "'teacher.layer3'"),         # a layer name, as before
    ('teacher.layr3:input', "'teacher.layer3:input'"),
])
def test_wrong_source_names_suggest_the_closest_sources(source, suggested):
    """Before: teacher.logit listed the teacher's layer names, not teacher.logits."""
    with pytest.raises(ValueError) as err:
        MODELS.build(distiller_reading(source))
    msg = str(err.value)
    assert f'did you mean {suggested}' in msg, msg
    assert "input 'teacher_logits'" in msg and 'teacher.<module>' in msg


def test_a_source_far_from_every_name_suggests_nothing():
    with pytest.raises(ValueError) as err:
        MODELS.build(distiller_reading('teacher.zzzzzz'))
    msg = str(err.value)
    assert "teacher has no layer named 'zzzzzz'" in msg and 'did you mean' not in msg
    assert 'layers of the teacher (CifarResNet): stem' in msg
