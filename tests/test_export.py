"""tools/export.py: micro CIFAR students trained a few iterations by tools/train.py, exported
to timm's, mmpretrain's and kdzoo's layouts, then loaded in a fresh process that never
imports kdzoo, with the printed code, and compared logit for logit; and from raw pixels
(uint8 arrays, JPEG files of several sizes) through each library's own preprocessing
(timm's resolve_data_config + create_transform, mmpretrain's ImageClassificationInferencer)
against kdzoo's Predictor."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch

from conftest import (CIFAR_CLASSES, cifar_cfg, config_path, load_tool, save_tiny_teacher,
                      tiny_resnet)
from kdzoo.registry import MODELS

MICRO = dict(arch=None, embed_dim=32, num_heads=2, depth=2, drop_path_rate=0.0)


def train_micro(name, data_root, root, student=None, teacher=False):
    """configs/deit/<name>.py with a smaller student, 2 iterations through tools/train.py;
    returns (config file, checkpoint)."""
    work_dir = root / name
    cfg = cifar_cfg(name, data_root, work_dir, batch_size=10, per_class=2,
                    randomness=dict(seed=0))
    cfg.model.student.update(student or MICRO)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # the test pipeline stays
    if teacher:
        cfg.model.teacher.model = tiny_resnet()
        cfg.model.teacher.checkpoint = str(root / 'teacher.pth')
    root.mkdir(exist_ok=True)
    config = str(root / f'{name}.py')
    cfg.dump(config)
    load_tool('train').main([config])
    return config, str(work_dir / 'epoch_1.pth')


@pytest.fixture(scope='module')
def trained(cifar_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp('export')
    save_tiny_teacher(root / 'teacher.pth')
    return dict(
        root=root,
        distilled=train_micro('deit_micro_distilled_cifar10', cifar_tiny, root, teacher=True),
        plain=train_micro('deit_micro_cifar10', cifar_tiny, root),
        dearkd=train_micro('deit_micro_cifar10', cifar_tiny, root / 'dearkd', student=dict(
            MICRO, type='DearKD', num_heads=4, num_mhca_blocks=1, distilled=True)))


def export(config, checkpoint, to, out, capsys):
    load_tool('export').main([config, checkpoint, '--to', to, '--out', str(out)])
    printed = capsys.readouterr().out
    lines = printed.split('load it with:\n', 1)[1]
    return printed, textwrap.dedent(lines)


def student_logits(config, checkpoint, path):
    """The kdzoo student's eval logits (the joint classifier) on a fixed batch, saved with
    the batch as plain tensors."""
    from kdzoo.apis import build_student
    net = build_student(config, checkpoint)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = net(x)
    torch.save(dict(x=x, logits=logits), str(path))
    return logits


def run_fresh(code, inputs, call='model(x)', forbid_kdzoo=True):
    """Run ``code`` in a new interpreter, apply the model to the saved batch and return
    (logits equal bit for bit, largest difference)."""
    script = code + textwrap.dedent(f'''
        import json, sys, torch
        saved = torch.load({str(inputs)!r}, weights_only=True)
        x = saved['x']
        with torch.no_grad():
            out = {call}
        print(json.dumps(dict(kdzoo_imported='kdzoo' in sys.modules,
                              equal=torch.equal(out, saved['logits']),
                              diff=(out - saved['logits']).abs().max().item())))
    ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          cwd=osp.dirname(str(inputs)), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['kdzoo_imported'] is not forbid_kdzoo
    return result


# The kdzoo student and the exported model run the same float32 operations in the same
# order (same attention kernel, LayerNorm, GELU, and the joint head averages the logits
# like timm's and mmpretrain's distilled heads), so the logits are expected bit for bit;
# the difference is reported too.
@pytest.mark.parametrize('kind', ['distilled', 'plain'])
def test_export_to_timm_loads_without_kdzoo_with_identical_logits(trained, kind, capsys):
    config, ckpt = trained[kind]
    out = trained['root'] / f'{kind}_timm.pth'
    printed, code = export(config, ckpt, 'timm', out, capsys)
    name = 'deit_tiny_distilled_patch16_224' if kind == 'distilled' else 'deit_tiny_patch16_224'
    assert f"timm.create_model('{name}', img_size=32, patch_size=4, embed_dim=32, depth=2, " \
           'num_heads=2, num_classes=10, pretrained=True' in printed
    assert f'file={str(out)!r}, num_classes=10' in printed
    state = torch.load(str(out), weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert not any(k.startswith(('teacher', 'student', 'terms')) for k in state)
    inputs = trained['root'] / f'{kind}_inputs.pt'
    student_logits(config, ckpt, inputs)
    result = run_fresh(code, inputs)
    assert result['equal'], result


def test_timm_model_student_to_timm(trained, capsys):
    """A TimmModel student is timm's own model: the file holds its keys unchanged."""
    from kdzoo.apis import build_student
    root = trained['root']
    config = root / 'timm_vit.py'
    config.write_text(
        f"_base_ = [{config_path('deit_micro_cifar10')!r}]\n"
        "model = dict(student=dict(_delete_=True, type='TimmModel', "
        "model_name='vit_tiny_patch16_224', img_size=32, patch_size=4, embed_dim=32, "
        "depth=2, num_heads=2, num_classes=10))\n")
    torch.manual_seed(0)
    net = build_student(str(config))
    ckpt = root / 'timm_vit_run.pth'
    torch.save(dict(meta={}, state_dict={'student.' + k: v for k, v in
                                         net.state_dict().items()}), str(ckpt))
    printed, code = export(str(config), str(ckpt), 'timm', root / 'vit_timm.pth', capsys)
    assert ("timm.create_model('vit_tiny_patch16_224', img_size=32, patch_size=4, "
            'embed_dim=32, depth=2, num_heads=2, num_classes=10, pretrained=True') in printed
    inputs = root / 'vit_inputs.pt'
    student_logits(str(config), str(ckpt), inputs)
    assert run_fresh(code, inputs)['equal']


@pytest.mark.parametrize('kind', ['distilled', 'plain'])
def test_export_to_mmpretrain_loads_without_kdzoo_with_identical_logits(trained, kind,
                                                                        capsys):
    config, ckpt = trained[kind]
    out = trained['root'] / f'{kind}_mmpretrain.pth'
    printed, code = export(config, ckpt, 'mmpretrain', out, capsys)
    head = 'DeiTClsHead' if kind == 'distilled' else 'VisionTransformerClsHead'
    assert f"'type': '{head}'" in printed and 'get_model(cfg, pretrained=' in printed
    saved = torch.load(str(out), weights_only=True)  # mmpretrain's checkpoint layout
    assert set(saved) == {'state_dict', 'meta'}
    assert saved['meta']['dataset_meta'] == dict(classes=list(CIFAR_CLASSES))
    assert all(k.startswith(('backbone.', 'head.layers.')) for k in saved['state_dict'])
    inputs = trained['root'] / f'{kind}_inputs_mm.pt'
    student_logits(config, ckpt, inputs)
    # mode='tensor': DeiTClsHead's eval output, the mean of the two heads' logits.
    result = run_fresh(code, inputs, call="model(x, mode='tensor')")
    assert result['equal'], result


def test_dearkd_to_kdzoo_loads_with_timm_create_model(trained, capsys):
    config, ckpt = trained['dearkd']
    out = trained['root'] / 'dearkd.pth'
    printed, code = export(config, ckpt, 'kdzoo', out, capsys)
    saved = torch.load(str(out), weights_only=True)
    assert set(saved) == {'state_dict', 'kdzoo'}
    assert json.loads(saved['kdzoo']['student'])['type'] == 'DearKD'
    inputs = trained['root'] / 'dearkd_inputs.pt'
    student_logits(config, ckpt, inputs)
    call = [ln[2:] for ln in code.splitlines() if ln.startswith('# timm.create_model(')][0]
    assert call.startswith("timm.create_model('dearkd_tiny', img_size=32, patch_size=4")
    result = run_fresh(f'import kdzoo, timm\nmodel = {call}.eval()\n', inputs,
                       forbid_kdzoo=False)
    assert result['equal'], result
    # and the printed kdzoo line, which rebuilds it from the file alone
    assert run_fresh(code, inputs, forbid_kdzoo=False)['equal']


@pytest.mark.parametrize('kind,to', [('dearkd', 'mmpretrain'), ('dearkd', 'timm')])
def test_unsupported_combination_is_refused_before_any_work(trained, kind, to, capsys):
    config, _ = trained[kind]
    out = trained['root'] / 'never.pth'
    with pytest.raises(SystemExit) as err:
        # the checkpoint is not even read: a missing one gives the same answer
        load_tool('export').main([config, 'missing.pth', '--to', to, '--out', str(out)])
    message = str(err.value)
    assert 'a dearkd student cannot be exported --to ' + to in message
    assert "kdzoo's DeiT" in message and '--to kdzoo' in message
    assert not out.exists()


def test_cnn_student_to_mmpretrain_is_refused():
    from kdzoo.apis import ConfigError, check_target, load_config
    cfg = load_config(osp.join(osp.dirname(osp.dirname(__file__)), 'configs', 'deit',
                               'resnet20_cifar10.py'))
    with pytest.raises(ConfigError, match=r'CifarResNet student cannot be exported '
                       r'--to mmpretrain.*--to kdzoo'):
        check_target(cfg, 'mmpretrain')
    assert check_target(cfg, 'kdzoo') == 'CifarResNet'


def test_teacher_only_and_foreign_checkpoints_are_refused(trained, capsys):
    config, ckpt = trained['distilled']
    root = trained['root']
    full = torch.load(ckpt, weights_only=True)
    teacher_only = dict(full, state_dict={'teacher.' + k: v for k, v in
                                          MODELS.build(tiny_resnet()).state_dict().items()})
    torch.save(teacher_only, str(root / 'teacher_only.pth'))
    foreign = root / 'foreign.pth'
    torch.save(MODELS.build(tiny_resnet()).state_dict(), str(foreign))
    resnet_run = dict(full, state_dict={'student.' + k: v for k, v in
                                        MODELS.build(tiny_resnet()).state_dict().items()})
    torch.save(resnet_run, str(root / 'resnet_run.pth'))
    cases = {'teacher_only.pth': 'holds no student weights',
             'foreign.pth': 'is not a kdzoo checkpoint',
             'resnet_run.pth': 'does not fit the student of this config'}
    for name, message in cases.items():
        out = root / f'{name}.out'
        with pytest.raises(SystemExit, match=message):
            load_tool('export').main([config, str(root / name), '--to', 'timm',
                                      '--out', str(out)])
        assert not out.exists()


def run_script(script, cwd, forbid_kdzoo=True):
    """Run ``script`` in a new interpreter; it leaves its answer in ``result`` (a dict),
    printed as JSON on a line of its own (progress bars may share stdout)."""
    script += ('\nimport sys as _sys\nprint("\\nRESULT " + json.dumps(dict(result, '
               'kdzoo_imported="kdzoo" in _sys.modules)), flush=True)\n')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          cwd=str(cwd), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
    assert line, proc.stdout[-3000:]
    result = json.loads(line[-1][len('RESULT '):])
    assert result['kdzoo_imported'] is not forbid_kdzoo
    return result


@pytest.fixture(scope='module')
def raw_images(cifar_tiny, trained):
    """RGB uint8 images: three CIFAR-10 test images at 32x32, larger and smaller non-square
    copies of them and a noise image; as tensors in a file, and as JPEG files."""
    from PIL import Image
    root = osp.join(cifar_tiny, 'test')
    classes = sorted(os.listdir(root))[:3]
    paths = [osp.join(root, c, sorted(os.listdir(osp.join(root, c)))[0]) for c in classes]
    rgb = [cv2.imread(p)[..., ::-1].copy() for p in paths]
    sizes = [(45, 70), (70, 45), (24, 29)]  # (h, w)
    rgb += [np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR))
            for a, (h, w) in zip(rgb, sizes)]
    rgb.append(np.random.default_rng(0).integers(0, 256, (50, 37, 3), dtype=np.uint8))
    folder = trained['root'] / 'jpegs'
    folder.mkdir(exist_ok=True)
    jpegs = list(paths)
    for i, a in enumerate(rgb[3:]):
        jpegs.append(str(folder / f'{i}_{a.shape[0]}x{a.shape[1]}.jpg'))
        cv2.imwrite(jpegs[-1], np.ascontiguousarray(a[..., ::-1]))
    tensors = trained['root'] / 'raw_images.pt'
    torch.save([torch.from_numpy(np.array(a)) for a in rgb], str(tensors))
    return dict(rgb=rgb, tensors=tensors, jpegs=jpegs)


TIMM_FROM_PIXELS = '''
import json, torch
from PIL import Image
from timm.data import create_transform, resolve_data_config
data = resolve_data_config(model=model)
transform = create_transform(**data)
arrays = torch.load({tensors!r}, weights_only=True)
x = torch.stack([transform(Image.fromarray(a.numpy())) for a in arrays])
with torch.no_grad():
    logits = model(x)
result = dict(data=data, logits=logits.tolist())
'''


@pytest.mark.parametrize('kind', ['distilled', 'plain', 'dearkd'])
def test_timm_preprocessing_from_raw_pixels_gives_the_predictors_results(
        trained, kind, raw_images, capsys):
    """timm prepares raw uint8 images of any size with the exported pretrained_cfg
    (resolve_data_config + create_transform) as kdzoo's Predictor does: the config's mean,
    std, input size, crop and interpolation. DearKD goes through --to kdzoo and the printed
    timm.create_model call."""
    import kdzoo
    config, ckpt = trained[kind]
    if kind == 'dearkd':
        _, code = export(config, ckpt, 'kdzoo', trained['root'] / 'dearkd_px.pth', capsys)
        call = [ln[2:] for ln in code.splitlines() if ln.startswith('# timm.create_model(')]
        code = f'import kdzoo, timm\nmodel = {call[0]}.eval()\n'
    else:
        _, code = export(config, ckpt, 'timm', trained['root'] / f'{kind}_px.pth', capsys)
    result = run_script(code + TIMM_FROM_PIXELS.format(tensors=str(raw_images['tensors'])),
                        trained['root'], forbid_kdzoo=kind != 'dearkd')
    pre = kdzoo.apis.load_config(config).data_preprocessor
    data = result['data']
    np.testing.assert_allclose(data['mean'], np.array(pre.mean) / 255, rtol=1e-9)
    np.testing.assert_allclose(data['std'], np.array(pre.std) / 255, rtol=1e-9)
    assert (data['input_size'], data['crop_pct'], data['crop_mode'],
            data['interpolation']) == ([3, 32, 32], 1.0, 'center', 'bicubic')
    predictor = kdzoo.Predictor(kdzoo.get_model(config, ckpt))
    expected = predictor.forward(raw_images['rgb'])[0].numpy()
    got = np.array(result['logits'])
    assert list(got.argmax(1)) == list(expected.argmax(1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize('kind', ['distilled', 'plain'])
def test_mmpretrain_inferencer_classifies_jpegs_as_the_predictor(trained, kind, raw_images,
                                                                  capsys):
    """mmpretrain's ImageClassificationInferencer(model=<printed config>, pretrained=<file>)
    reads JPEG files of any size with the config's test pipeline (completed to resize and
    crop), the data preprocessor and the class names of the file, as kdzoo does."""
    import kdzoo
    config, ckpt = trained[kind]
    out = trained['root'] / f'{kind}_mm_px.pth'
    _, code = export(config, ckpt, 'mmpretrain', out, capsys)
    script = code + textwrap.dedent(f'''
        import json
        from mmpretrain.apis import ImageClassificationInferencer
        inferencer = ImageClassificationInferencer(model=cfg, pretrained={str(out)!r},
                                                   device='cpu')
        found = inferencer({raw_images['jpegs']!r}, batch_size=4)
        result = dict(
            labels=[r['pred_label'] for r in found],
            classes=[r.get('pred_class') for r in found],
            scores=[r['pred_scores'].tolist() for r in found],
            preprocessor=inferencer.model._config.model.data_preprocessor.to_dict(),
            pipeline=[dict(t) for t in inferencer.config.test_dataloader.dataset.pipeline])
    ''')
    result = run_script(script, trained['root'])
    cfg = kdzoo.apis.load_config(config)
    assert {k: result['preprocessor'][k] for k in ('mean', 'std', 'to_rgb')} == {
        k: cfg.data_preprocessor[k] for k in ('mean', 'std', 'to_rgb')}
    assert [t['type'] for t in result['pipeline']] == [
        'LoadImageFromFile', 'ResizeEdge', 'CenterCrop', 'PackInputs']
    expected = kdzoo.Predictor(kdzoo.get_model(config, ckpt))(raw_images['jpegs'])
    assert result['labels'] == [r['pred_label'] for r in expected]
    assert result['classes'] == [r['pred_class'] for r in expected]
    assert set(result['classes']) <= set(CIFAR_CLASSES)
    np.testing.assert_allclose(result['scores'], [r['pred_scores'] for r in expected],
                               rtol=0, atol=1e-6)


def test_timm_settings_of_an_imagenet_pipeline():
    """ImageNet's ResizeEdge 256 + CenterCrop 224 is timm's crop_pct 0.875; crop_pct is
    chosen so that timm's floor(crop / crop_pct) gives back the resize edge."""
    from types import SimpleNamespace

    from kdzoo.apis import find_config, load_config
    from kdzoo.apis.export import _timm_crop_pct, timm_data_cfg
    net = SimpleNamespace(patch_embed=SimpleNamespace(
        img_size=224, proj=SimpleNamespace(in_channels=3)))
    data = timm_data_cfg(load_config(find_config('deit_ti')), net)
    assert data == dict(input_size=(3, 224, 224), crop_pct=0.875, crop_mode='center',
                        interpolation='bicubic', mean=(0.485, 0.456, 0.406),
                        std=(0.229, 0.224, 0.225))
    for crop, edge in ((32, 36), (224, 256), (224, 248), (299, 342), (384, 384), (32, 35)):
        assert int(np.floor(crop / _timm_crop_pct(crop, edge))) == edge
