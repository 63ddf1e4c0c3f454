"""The teacher's own accuracy in validation and test (``teacher/top<k>``), computed by
running the teacher once per run."""
import copy

import pytest
import torch

from conftest import build_runner, cifar_cfg, save_tiny_teacher, tiny_deit, tiny_resnet
from kdzoo.evaluation import HeadsAccuracy
from kdzoo.registry import MODELS


@pytest.fixture(scope='module')
def teacher_file(tmp_path_factory):
    return save_tiny_teacher(tmp_path_factory.mktemp('teacher') / 'teacher.pth', seed=1)


def tiny_distill_cfg(data_root, work_dir, teacher, **options):
    return cifar_cfg('deit_ti_distilled_cifar10', data_root, work_dir, batch_size=25,
                     per_class=2, max_epochs=2,
                     **{'model.student': tiny_deit(),
                        'model.teacher.model': tiny_resnet(),
                        'model.teacher.checkpoint': teacher,
                        'train_cfg.val_interval': 1,
                        'train_dataloader.batch_size': 20,  # even: mixing takes pairs
                        **options})


@pytest.fixture(scope='module')
def trained(cifar_tiny, teacher_file, tmp_path_factory):
    """2 epochs with a validation after each, then the test; the teacher's calls counted
    with the distiller's mode (training or evaluation) at the time."""
    cfg = tiny_distill_cfg(cifar_tiny, tmp_path_factory.mktemp('teacher_acc'), teacher_file)
    runner = build_runner(cfg)
    calls = []
    model = runner.model
    model.teacher.register_forward_hook(lambda *_: calls.append(model.training))
    val_metrics = []

    from mmengine.hooks import Hook

    class Keep(Hook):
        def after_val_epoch(self, runner, metrics=None):
            val_metrics.append(dict(metrics))
    runner.register_hook(Keep())
    runner.train()
    after_train = list(calls)
    test_metrics = runner.test()
    return dict(runner=runner, calls=calls, after_train=after_train, val=val_metrics,
                test=test_metrics, teacher_file=teacher_file)


def independent_accuracy(runner, teacher_file):
    """The teacher's top-1 / top-5 on the runner's test images, from a freshly built
    network with the same weights (no Distiller involved)."""
    net = MODELS.build(tiny_resnet())
    net.load_state_dict(torch.load(teacher_file, weights_only=True))
    net.eval()
    preprocessor = runner.model.data_preprocessor
    hits1 = hits5 = total = 0
    with torch.no_grad():
        for batch in runner.test_dataloader:
            data = preprocessor(batch, False)
            logits = net(data['inputs'])
            labels = torch.cat([s.gt_label for s in data['data_samples']])
            top = logits.topk(5, dim=1).indices
            hits1 += (top[:, 0] == labels).sum().item()
            hits5 += (top == labels[:, None]).any(1).sum().item()
            total += len(labels)
    return 100 * hits1 / total, 100 * hits5 / total


def test_teacher_accuracy_equals_an_independent_computation(trained):
    top1, top5 = independent_accuracy(trained['runner'], trained['teacher_file'])
    for metrics in trained['val'] + [trained['test']]:
        assert metrics['teacher/top1'] == pytest.approx(top1)
        assert metrics['teacher/top5'] == pytest.approx(top5)
        assert 'joint/top1' in metrics and 'dist/top1' in metrics


def test_teacher_runs_in_the_first_validation_only(trained):
    runner = trained['runner']
    n_val_batches = len(runner.val_dataloader)
    evaluation = [c for c in trained['after_train'] if not c]
    assert len(trained['val']) == 2
    assert len(evaluation) == n_val_batches
    # The test reads the same images: no teacher call at all.
    assert trained['calls'] == trained['after_train']
    # The teacher still runs at every training step (the distillation term reads it).
    assert sum(trained['after_train']) == 2 * len(runner.train_dataloader)


def _val_batch(model, runner):
    return model.data_preprocessor(next(iter(runner.val_dataloader)), False)


def test_no_teacher_accuracy_without_teacher_weights_or_when_off(trained, cifar_tiny, tmp_path):
    from kdzoo.apis import build_model
    runner = trained['runner']
    cfg = tiny_distill_cfg(cifar_tiny, tmp_path, trained['teacher_file'])
    off = copy.deepcopy(cfg)
    off.model.eval_teacher = False
    for model in (build_model(cfg, teacher_weights=False), build_model(off)):
        model.eval()
        data = _val_batch(model, runner)
        samples = model.predict(data['inputs'], data['data_samples'])
        assert all('teacher_rank' not in s for s in samples)


def test_teacher_rank_in_dearkd_stage_two(trained, cifar_tiny, tmp_path):
    """With every term off (DearKD's stage 2) the first validation still evaluates the
    teacher once; the ranks are those of the teacher's logits."""
    from kdzoo.apis import build_model
    runner = trained['runner']
    model = build_model(tiny_distill_cfg(cifar_tiny, tmp_path, trained['teacher_file']))
    model.eval()
    model.set_stage({})
    data = _val_batch(model, runner)
    samples = model.predict(data['inputs'], data['data_samples'])
    logits = model.teacher.model(data['inputs'])
    labels = torch.cat([s.gt_label for s in samples])
    expected = (logits.argsort(1, descending=True) == labels[:, None]).float().argmax(1)
    assert [int(s.teacher_rank) for s in samples] == expected.tolist()


def test_metric_from_teacher_ranks():
    metric = HeadsAccuracy(topk=(1, 2, 5))
    ranks = [0, 1, 4, 0, 9, 2]
    samples = [dict(gt_label=torch.tensor([0]), pred_score=torch.full((10,), 0.1),
                    teacher_rank=torch.tensor(r)) for r in ranks]
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    assert out['teacher/top1'] == pytest.approx(100 * 2 / 6)
    assert out['teacher/top2'] == pytest.approx(100 * 3 / 6)
    assert out['teacher/top5'] == pytest.approx(100 * 5 / 6)


def test_teacher_accuracy_under_two_process_ddp(cifar_tiny, trained, tmp_path):
    """Two gloo processes each evaluate the teacher on their half of the images once; the
    evaluator gathers both halves, so the reported value is the whole set's."""
    import glob
    import os
    import os.path as osp
    import re
    import subprocess
    import sys

    from conftest import REPO, write_tiny_distill_config
    from test_distributed import free_port
    config = write_tiny_distill_config(tmp_path / 'ddp.py', cifar_tiny,
                                       teacher_checkpoint=trained['teacher_file'],
                                       per_class=2, batch_size=5, max_epochs=2,
                                       extra="train_cfg['val_interval'] = 1\n"
                                       # pair mixing takes whole pairs per process
                                       "train_dataloader['batch_size'] = 4\n")
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(free_port()),
               PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
               PATH=osp.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''))
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        env.pop(key, None)
    work_dir = tmp_path / 'work'
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, '2',
                           '--work-dir', str(work_dir)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    with open(glob.glob(str(work_dir / '*' / '*.log'))[0]) as f:
        log = f.read()
    reported = [float(v) for v in re.findall(r'Epoch\(val\).*teacher/top1: ([\d.]+)', log)]
    top1, _ = independent_accuracy(trained['runner'], trained['teacher_file'])
    assert reported == pytest.approx([top1, top1], abs=1e-3)
