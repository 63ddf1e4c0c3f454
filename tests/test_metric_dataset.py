"""HeadsAccuracy on a hand-made set, and ImageFolderSubset's class-balanced subsets."""
import os.path as osp
from collections import Counter

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample

from conftest import CIFAR_CLASSES
from kdzoo.evaluation import HeadsAccuracy
from kdzoo.models import Classifier
from kdzoo.registry import DATASETS, METRICS

NUM_CLASSES = 6
LABELS = [0, 3, 5, 2, 4]
# Rank (0 = best) of the true label in each head's scores, sample by sample.
RANKS = {
    'pred_score': [0, 0, 1, 5, 4],  # joint: top1 2/5, top5 4/5
    'cls_score': [1, 5, 5, 0, 2],   # class head: top1 1/5, top5 3/5
    'dist_score': [0, 0, 0, 0, 1],  # distillation head: top1 4/5, top5 5/5
}
EXPECTED = {'joint/top1': 40.0, 'joint/top5': 80.0, 'cls/top1': 20.0, 'cls/top5': 60.0,
            'dist/top1': 80.0, 'dist/top5': 100.0}


def scores_with_rank(label, rank, k=NUM_CLASSES):
    """A score vector in which ``label`` is the ``rank``-th highest."""
    others = [c for c in range(k) if c != label]
    order = others[:rank] + [label] + others[rank:]
    scores = torch.zeros(k)
    for position, cls in enumerate(order):
        scores[cls] = (k - position) / (k * (k + 1) / 2)
    return scores


def hand_made_samples(keys=('pred_score', 'cls_score', 'dist_score')):
    samples = []
    for i, label in enumerate(LABELS):
        s = DataSample().set_gt_label(label)
        for key in keys:
            scores = scores_with_rank(label, RANKS[key][i])
            if key == 'pred_score':
                s.set_pred_score(scores)
            else:
                s.set_field(scores, key, field_type='data')
        samples.append(s)
    return samples


def evaluate(samples, **metric_kw):
    evaluator = Evaluator(metrics=[METRICS.build(dict(type='HeadsAccuracy', **metric_kw))])
    # Fed in two batches, as the runner's loop does.
    evaluator.process(data_samples=samples[:2], data_batch=None)
    evaluator.process(data_samples=samples[2:], data_batch=None)
    return evaluator.evaluate(len(samples))


def test_scores_with_rank_helper():
    s = scores_with_rank(2, 3)
    assert (s > s[2]).sum().item() == 3


def test_heads_accuracy_on_hand_made_set():
    metrics = evaluate(hand_made_samples())
    assert set(metrics) == set(EXPECTED)
    for key, value in EXPECTED.items():
        assert metrics[key] == pytest.approx(value), key


def test_single_head_reports_joint_only():
    metrics = evaluate(hand_made_samples(keys=('pred_score',)))
    assert metrics == pytest.approx({'joint/top1': 40.0, 'joint/top5': 80.0})


def test_topk_larger_than_class_count_is_skipped():
    metrics = evaluate(hand_made_samples(), topk=(1, 3, 10))
    assert 'joint/top10' not in metrics
    assert metrics['joint/top3'] == pytest.approx(60.0)   # ranks 0, 0, 1
    assert metrics['cls/top3'] == pytest.approx(60.0)     # ranks 1, 0, 2
    assert metrics['dist/top3'] == pytest.approx(100.0)


def test_heads_accuracy_on_classifier_predictions():
    """The Classifier's predictions: joint = softmax of the mean of the two heads' logits."""
    cls = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    dist = torch.tensor([[0.0, 5.0, 0.0], [0.0, 1.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    labels = [0, 1, 0, 2]
    # class head right on samples 0, 1 -> 50 %; distillation head on 1, 2, 3 -> 75 %;
    # joint (cls + dist) / 2 argmax: [1, 1, 0, 2] -> right on 1, 2, 3 -> 75 %.
    samples = [DataSample().set_gt_label(y) for y in labels]
    samples = Classifier.to_data_samples(cls, dist, samples)
    assert [int(s.pred_label) for s in samples] == [1, 1, 0, 2]
    metrics = evaluate(samples, topk=(1,))
    assert metrics == pytest.approx({'joint/top1': 75.0, 'cls/top1': 50.0,
                                     'dist/top1': 75.0})


def test_heads_accuracy_default_prefix_is_empty():
    assert isinstance(METRICS.build(dict(type='HeadsAccuracy')), HeadsAccuracy)
    assert HeadsAccuracy().prefix == ''


# ------------------------------------------------------------------ ImageFolderSubset

def build_subset(root, prefix='train', **kw):
    return DATASETS.build(dict(type='ImageFolderSubset', data_root=root, data_prefix=prefix,
                               pipeline=[], **kw))


def files(ds):
    return [ds.get_data_info(i)['img_path'] for i in range(len(ds))]


def per_class_counts(ds):
    return Counter(int(ds.get_data_info(i)['gt_label']) for i in range(len(ds)))


def test_full_folder_is_loaded_with_cifar_classes(cifar_tiny):
    ds = build_subset(cifar_tiny)
    assert len(ds) == 200
    assert tuple(ds.metainfo['classes']) == CIFAR_CLASSES
    assert per_class_counts(ds) == {c: 20 for c in range(10)}
    for i in (0, 57, 199):
        info = ds.get_data_info(i)
        assert osp.basename(osp.dirname(info['img_path'])) == CIFAR_CLASSES[info['gt_label']]


def test_per_class_subset_is_class_balanced(cifar_tiny):
    full = set(files(build_subset(cifar_tiny)))
    ds = build_subset(cifar_tiny, per_class=5)
    assert len(ds) == 50
    assert per_class_counts(ds) == {c: 5 for c in range(10)}
    assert set(files(ds)) <= full
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert osp.basename(osp.dirname(info['img_path'])) == CIFAR_CLASSES[info['gt_label']]


def test_per_class_larger_than_class_keeps_everything(cifar_tiny):
    ds = build_subset(cifar_tiny, per_class=1000)
    assert len(ds) == 200


def test_subset_ratio_on_shipped_subset(cifar_mini):
    full = build_subset(cifar_mini)
    assert len(full) == 5000
    ds = build_subset(cifar_mini, subset_ratio=0.1)
    assert per_class_counts(ds) == {c: 50 for c in range(10)}
    test = build_subset(cifar_mini, prefix='test', subset_ratio=0.25)
    assert per_class_counts(test) == {c: 25 for c in range(10)}


def test_subset_is_deterministic_per_seed(cifar_tiny):
    a = files(build_subset(cifar_tiny, per_class=5, subset_seed=3))
    b = files(build_subset(cifar_tiny, per_class=5, subset_seed=3))
    c = files(build_subset(cifar_tiny, per_class=5, subset_seed=4))
    assert a == b
    assert set(a) != set(c)
    r1 = files(build_subset(cifar_tiny, subset_ratio=0.25, subset_seed=0))
    r2 = files(build_subset(cifar_tiny, subset_ratio=0.25, subset_seed=0))
    r3 = files(build_subset(cifar_tiny, subset_ratio=0.25, subset_seed=1))
    assert r1 == r2 and set(r1) != set(r3)
    assert len(r1) == len(r3) == 50


def test_data_prefix_as_dict(cifar_tiny):
    ds = build_subset(cifar_tiny, prefix=dict(img_path='test'), per_class=2)
    assert len(ds) == 20
    assert all('/test/' in f for f in files(ds))


def test_missing_folder_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'nope' / 'train')):
        build_subset(str(tmp_path / 'nope'))


@pytest.mark.parametrize('kw,bad', [(dict(subset_ratio=0.0), '0.0'),
                                    (dict(subset_ratio=1.5), '1.5'),
                                    (dict(per_class=0), '0')])
def test_bad_subset_arguments_raise(cifar_tiny, kw, bad):
    with pytest.raises(ValueError, match=bad):
        build_subset(cifar_tiny, **kw)


def test_class_count_mismatch_stops_before_the_first_step(cifar_tiny, tmp_path):
    from conftest import build_runner, cifar_cfg, tiny_resnet
    cfg = cifar_cfg('resnet20_cifar10', cifar_tiny, tmp_path,
                    model=dict(student=tiny_resnet(num_classes=5)))
    runner = build_runner(cfg)
    with pytest.raises(ValueError, match=r'has 10 classes but the model predicts 5: set '
                                         r'num_classes=10'):
        runner.train()
    assert runner.iter == 0
    cfg = cifar_cfg('resnet20_cifar10', cifar_tiny, tmp_path / 'b',
                    model=dict(data_preprocessor=dict(num_classes=7)))
    with pytest.raises(ValueError, match='data_preprocessor.num_classes is 7'):
        build_runner(cfg).train()
