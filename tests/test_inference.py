"""kdzoo.get_model, kdzoo.Predictor / inference_model and tools/infer.py on real CIFAR-10
images of the shipped subset (and larger, non-square copies of them), checked against the
student applied by hand."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

import kdzoo
from conftest import CIFAR_CLASSES, load_tool

CONFIG = 'deit_micro_distilled_cifar10'  # a shipped config, by name


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A kdzoo checkpoint (as tools/train.py writes it: meta + student.* keys) of the
    config's student with seeded weights."""
    from kdzoo.apis import build_student, find_config
    torch.manual_seed(0)
    net = build_student(find_config(CONFIG))
    path = str(tmp_path_factory.mktemp('infer') / 'epoch_1.pth')
    torch.save(dict(meta=dict(epoch=1), state_dict={'student.' + k: v for k, v in
                                                     net.state_dict().items()}), path)
    return path


@pytest.fixture(scope='module')
def images(cifar_tiny):
    """Two test images of every class."""
    root = osp.join(cifar_tiny, 'test')
    return [osp.join(root, c, f) for c in sorted(os.listdir(root))
            for f in sorted(os.listdir(osp.join(root, c)))[:2]]


def resized_by_hand(rgb, size=32):
    """timm's eval transform with crop_pct=1.0, written out: the short side to ``size``
    (bicubic, Pillow; the long side truncated), then the centre ``size`` x ``size``."""
    from PIL import Image
    h, w = rgb.shape[:2]
    new_w, new_h = (size, int(size * h / w)) if w < h else (int(size * w / h), size)
    out = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BICUBIC))
    top, left = int(round((new_h - size) / 2)), int(round((new_w - size) / 2))
    return np.ascontiguousarray(out[top:top + size, left:left + size])


def other_sizes(rgb_arrays):
    """Larger and smaller, non-square copies of 32x32 images, and one of noise."""
    from PIL import Image
    sizes = [(45, 70), (70, 45), (96, 96), (20, 27)]  # (h, w)
    out = [np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR))
           for a, (h, w) in zip(rgb_arrays, sizes)]
    return out + [np.random.default_rng(0).integers(0, 256, (50, 37, 3), dtype=np.uint8)]


def by_hand(model, rgb_arrays):
    """Softmax of the joint logits with the config's normalisation done here."""
    pre = model._config.data_preprocessor
    x = torch.from_numpy(np.stack(rgb_arrays)).permute(0, 3, 1, 2).float()
    x = (x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x).softmax(-1).numpy()


def test_get_model_returns_the_student_in_eval_mode_with_its_data(checkpoint):
    model = kdzoo.get_model(CONFIG, checkpoint)
    assert type(model).__name__ == 'DeiT' and not model.training
    assert model.dataset_meta['classes'] == list(CIFAR_CLASSES)
    saved = torch.load(checkpoint, weights_only=True)['state_dict']
    assert torch.equal(model.head.weight, saved['student.head.weight'])
    assert model._config.test_dataloader.dataset.pipeline[0]['type'] == 'LoadImageFromFile'


def test_paths_and_arrays_give_the_same_result_and_match_the_model(checkpoint, images):
    model = kdzoo.get_model(CONFIG, checkpoint)
    predictor = kdzoo.Predictor(model, batch_size=8)  # 20 images: 3 batches
    from_paths = predictor(images)
    rgb = [cv2.imread(p)[..., ::-1] for p in images]  # the same decoder as the pipeline
    from_rgb = predictor(rgb)
    # The same batch size: another one may round the float32 sums differently.
    from_bgr = kdzoo.Predictor(model, batch_size=8, channel_order='bgr')(
        [a[..., ::-1] for a in rgb])
    expected = by_hand(model, rgb)
    assert len(from_paths) == len(images)
    for a, b, c, scores in zip(from_paths, from_rgb, from_bgr, expected):
        assert a['pred_label'] == b['pred_label'] == c['pred_label'] == scores.argmax()
        np.testing.assert_array_equal(a['pred_scores'], b['pred_scores'])
        np.testing.assert_array_equal(a['pred_scores'], c['pred_scores'])
        np.testing.assert_allclose(a['pred_scores'], scores, rtol=0, atol=1e-6)


def test_results_have_the_keys_shapes_and_per_head_scores(checkpoint, images):
    model = kdzoo.get_model(CONFIG, checkpoint)
    one = kdzoo.inference_model(model, images[0])
    assert isinstance(one, dict)
    assert set(one) == {'pred_label', 'pred_class', 'pred_score', 'pred_scores',
                        'cls_scores', 'dist_scores'}
    for key in ('pred_scores', 'cls_scores', 'dist_scores'):
        assert one[key].shape == (10,)
        assert abs(float(one[key].sum()) - 1.0) < 1e-5
    assert one['pred_class'] == CIFAR_CLASSES[one['pred_label']]
    assert one['pred_score'] == pytest.approx(float(one['pred_scores'].max()))
    # the joint scores are the softmax of the mean of the two heads' logits
    rgb = cv2.imread(images[0])[..., ::-1].copy()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    pre = model._config.data_preprocessor
    x = (x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)
    with torch.no_grad():
        cls_logits, dist_logits = model.forward_heads(x)
    np.testing.assert_allclose(one['cls_scores'], cls_logits.softmax(-1)[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(one['dist_scores'], dist_logits.softmax(-1)[0].numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(one['pred_scores'],
                               ((cls_logits + dist_logits) / 2).softmax(-1)[0].numpy(),
                               atol=1e-6)


def test_a_student_without_distillation_token_has_no_head_scores(tmp_path, images):
    from kdzoo.apis import build_student, find_config
    net = build_student(find_config('deit_micro_cifar10'))
    ckpt = str(tmp_path / 'plain.pth')
    torch.save(dict(meta={}, state_dict={'student.' + k: v for k, v in
                                         net.state_dict().items()}), ckpt)
    results = kdzoo.inference_model('deit_micro_cifar10', images[:3], checkpoint=ckpt)
    assert [set(r) for r in results] == [{'pred_label', 'pred_class', 'pred_score',
                                          'pred_scores'}] * 3


def test_bad_inputs_are_refused_before_any_work(checkpoint, images, monkeypatch):
    predictor = kdzoo.Predictor(CONFIG, checkpoint)
    monkeypatch.setattr(predictor, 'forward', lambda items: pytest.fail('ran the model'))
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        predictor([images[0], 'nope.jpg'])
    with pytest.raises(ValueError, match=r'input 1: an HxWx3 uint8 array.*float32'):
        predictor([images[0], np.zeros((32, 32, 3), np.float32)])
    with pytest.raises(TypeError, match='input 0'):
        predictor([42])
    with pytest.raises(ValueError, match=r"channel_order must be one of \('rgb', 'bgr'\)"):
        kdzoo.Predictor(CONFIG, checkpoint, channel_order='rbg')


def test_infer_tool_prints_a_table(checkpoint, images, capsys):
    results = load_tool('infer').main([CONFIG, checkpoint, *images[:4], '--topk', '3'])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['image', 'top-3', '(joint)', 'class', 'head', 'distillation',
                                'head']
    assert len(lines) == 5
    for line, path, res in zip(lines[1:], images, results):
        assert line.startswith(path)
        assert f"{res['pred_class']} {res['pred_score']:.3f}" in line


def test_images_of_any_size_are_resized_then_centre_cropped(checkpoint, images):
    """CIFAR's test pipeline does not resize: the predictor adds the short side to 32 and a
    centre crop, so any image classifies as timm's eval transform (crop_pct=1.0) would
    prepare it; images at 32x32 stay exactly as the config's own pipeline gives them."""
    from mmcv.transforms import Compose
    model = kdzoo.get_model(CONFIG, checkpoint)
    predictor = kdzoo.Predictor(model, batch_size=8)
    assert predictor.input_size == (32, 32)
    assert [t['type'] for t in predictor.pipeline_cfg] == [
        'LoadImageFromFile', 'ResizeEdge', 'CenterCrop', 'PackInputs']
    rgb = [cv2.imread(p)[..., ::-1].copy() for p in images]
    odd = other_sizes(rgb)
    results = predictor(odd)
    expected = by_hand(model, [resized_by_hand(a) for a in odd])
    for res, scores in zip(results, expected):
        assert res['pred_label'] == scores.argmax()
        np.testing.assert_allclose(res['pred_scores'], scores, rtol=0, atol=1e-6)
    # 32x32 images: bit for bit what the config's pipeline (no resizing) gives
    plain = kdzoo.Predictor(model, batch_size=8)
    plain.pipeline = Compose([plain.pipeline.transforms[-1]])  # PackInputs only
    for a, b in zip(predictor(rgb), plain(rgb)):
        np.testing.assert_array_equal(a['pred_scores'], b['pred_scores'])


def test_a_pipeline_that_resizes_is_kept():
    from kdzoo.apis import load_config
    from kdzoo.apis.inference import inference_pipeline_cfg, input_size_of
    cfg = load_config(kdzoo.find_config('deit_ti'))  # ImageNet: ResizeEdge 256 + crop 224
    assert input_size_of(cfg) == (224, 224)
    assert inference_pipeline_cfg(cfg, (224, 224)) == [
        dict(t) for t in cfg.test_dataloader.dataset.pipeline]
    cifar = load_config(kdzoo.find_config('resnet20_cifar10'))  # a CNN: its training crop
    assert input_size_of(cifar) == (32, 32)
    assert [t['type'] for t in inference_pipeline_cfg(cifar, (24, 40))] == [
        'LoadImageFromFile', 'Resize', 'PackInputs']  # a plain resize to a non-square size


def test_inputs_that_are_no_images_are_refused_with_what_is_accepted(checkpoint, images,
                                                                     tmp_path):
    model = kdzoo.get_model(CONFIG, checkpoint)
    accepted = r'an image path, an HxWx3 uint8 array, or a list of those'
    with pytest.raises(TypeError, match=rf'inputs must be {accepted}; got int'):
        kdzoo.inference_model(model, 5)
    with pytest.raises(TypeError, match=rf'inputs must be {accepted}; got dict'):
        kdzoo.inference_model(model, {'img': images[0]})
    with pytest.raises(ValueError, match='no inputs given'):
        kdzoo.inference_model(model, [])
    with pytest.raises(IsADirectoryError, match='is a folder; pass its image files'):
        kdzoo.inference_model(model, str(tmp_path))
    import pathlib
    one = kdzoo.inference_model(model, pathlib.Path(images[0]))
    assert one['pred_label'] == kdzoo.inference_model(model, images[0])['pred_label']


def test_get_model_names_its_weights_or_asks_for_random_init(checkpoint, tmp_path, images):
    with pytest.raises(kdzoo.apis.ConfigError,
                       match=r'names no weights, so the student would be randomly '
                             r'initialised.*checkpoint=.*random_init=True'):
        kdzoo.get_model(CONFIG)
    with pytest.raises(kdzoo.apis.ConfigError, match='names no weights'):
        kdzoo.Predictor(CONFIG)
    with pytest.raises(kdzoo.apis.ConfigError,
                       match='checkpoint and random_init exclude each other'):
        kdzoo.get_model(CONFIG, checkpoint, random_init=True)
    torch.manual_seed(0)
    random = kdzoo.get_model(CONFIG, random_init=True)
    assert type(random).__name__ == 'DeiT'
    # an exported --to kdzoo file holds its weights: no checkpoint, same predictions
    out = str(tmp_path / 'student_kdzoo.pth')
    kdzoo.apis.export_student(CONFIG, checkpoint, 'kdzoo', out)
    exported = kdzoo.Predictor(kdzoo.get_model(out))
    odd = other_sizes([cv2.imread(p)[..., ::-1].copy() for p in images])
    for a, b in zip(exported(odd), kdzoo.Predictor(CONFIG, checkpoint)(odd)):
        np.testing.assert_array_equal(a['pred_scores'], b['pred_scores'])
    with pytest.raises(kdzoo.apis.ConfigError, match='give no checkpoint'):
        kdzoo.get_model(out, random_init=True)


def test_infer_tool_takes_folders_and_images_of_any_size(checkpoint, images, tmp_path,
                                                         capsys):
    folder = tmp_path / 'photos'
    (folder / 'b' / 'deeper').mkdir(parents=True)
    (folder / 'a').mkdir()
    big = other_sizes([cv2.imread(p)[..., ::-1].copy() for p in images])
    cv2.imwrite(str(folder / 'b' / 'deeper' / 'wide.JPG'), big[1][..., ::-1])
    cv2.imwrite(str(folder / 'a' / 'tall.jpg'), big[0][..., ::-1])
    cv2.imwrite(str(folder / 'a' / 'square.png'), big[2][..., ::-1])
    (folder / 'a' / 'notes.txt').write_text('not an image')
    single = tmp_path / 'loose.jpeg'
    cv2.imwrite(str(single), big[3][..., ::-1])
    expected = [str(folder / 'a' / 'square.png'), str(folder / 'a' / 'tall.jpg'),
                str(folder / 'b' / 'deeper' / 'wide.JPG'), str(single)]
    results = load_tool('infer').main([CONFIG, checkpoint, str(folder), str(single)])
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines[1:]] == expected
    want = kdzoo.Predictor(CONFIG, checkpoint)(expected)
    assert [r['pred_label'] for r in results] == [r['pred_label'] for r in want]
    for name, message in ((str(tmp_path / 'nope'), 'does not exist'),
                          (str(folder / 'a' / 'notes.txt'), 'notes.txt')):
        with pytest.raises(SystemExit, match=message):
            load_tool('infer').main([CONFIG, checkpoint, str(folder), name])
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(SystemExit, match=r"folder '.*empty' holds no image files"):
        load_tool('infer').main([CONFIG, checkpoint, str(empty)])
