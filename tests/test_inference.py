"""kdzoo.get_model, kdzoo.Predictor / inference_model and tools/infer.py on real CIFAR-10
images of the shipped subset, checked against the student applied by hand."""
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
