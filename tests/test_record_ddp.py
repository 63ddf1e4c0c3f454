"""One teacher record read by one process and by two (gloo, tools/dist_train.sh): at the
same global batch, every (epoch, position) is read once, with the same sample, the same
mixed view and the record's own teacher logits, and data-parallel training (gradients
averaged over the same global batch) ends with the one-process weights.

What each process read is captured by a probe hook (a file the configs import through
``custom_imports``): per training step the replay keys, the preprocessed inputs and
scores, and the teacher logits the Distiller took from the record; at the end the
weights. Each process saves its own ``.pt`` file.
"""
import os
import textwrap

import pytest
import torch

from conftest import save_tiny_teacher, write_tiny_distill_config
from test_distributed import dist_train

from kdzoo.apis.record_teacher import record_teacher
from kdzoo.records import TeacherRecord

PER_CLASS, EPOCHS, B = 2, 2, 4  # 20 images = 10 pairs: 3 steps an epoch in either run
POSITIONS = 10 * PER_CLASS
PROBE = 'kdzoo_record_ddp_probe'

# SGD at a constant learning rate, so that the weights move well beyond float rounding in
# 6 steps and a rounding difference in a gradient stays one in the weights (AdamW divides
# by the root of the squared gradients: a gradient that is zero up to rounding, such as
# that of the attention's key bias, takes a step of about lr in a direction the rounding
# decides). The soft loss reads every logit of the record, not only its argmax. The tiny
# student has no dropout or drop path. float32: under bf16 autocast a batch of 2B and two
# of B round differently, far beyond the float32 bound below.
SETTINGS = '''
env_cfg = dict(precision='fp32')
model['distill_loss'] = dict(type='SoftDistillLoss')
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.2, momentum=0.9,
                                    weight_decay=0.05))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=100)]
'''

PROBE_SOURCE = '''
"""Saves what a training process read (see tests/test_record_ddp.py)."""
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from kdzoo.registry import HOOKS


@HOOKS.register_module(force=True)
class RecordReadProbe(Hook):
    priority = 'LOWEST'

    def __init__(self, out):
        self.out = out
        self.steps, self.view, self.read, self.initial = [], None, None, None

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        recorded = model.recorded_teacher
        read = recorded.logits

        def logits(data_samples, device=None):
            out = read(data_samples, device)
            self.read = out.detach().clone()
            return out

        recorded.logits = logits

        def views(module, args, kwargs, output):
            training = kwargs.get('training', args[1] if len(args) > 1 else False)
            if training:
                self.view = output

        model.data_preprocessor.register_forward_hook(views, with_kwargs=True)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        samples = self.view['data_samples']
        self.steps.append(dict(
            iter=runner.iter,
            keys=torch.tensor([list(s.metainfo['replay']) for s in samples]),
            inputs=self.view['inputs'].detach().clone(),
            scores=torch.stack([s.gt_score for s in samples]),
            teacher=self.read))
        self.view = self.read = None

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(dict(steps=self.steps, initial=self.initial,
                        weights={k: v.detach().clone()
                                 for k, v in model.state_dict().items()}),
                   self.out % get_rank())
'''


@pytest.fixture(scope='module')
def setup(cifar_tiny, tmp_path_factory):
    """A record of a tiny seeded teacher over 2 epochs of 20 replayed views, the probe
    module, and a config that reads the record at a per-process batch of 2B (one process)
    or B (two)."""
    root = tmp_path_factory.mktemp('record_ddp')
    teacher = save_tiny_teacher(root / 'teacher.pth', seed=3)
    base = write_tiny_distill_config(root / 'tiny.py', cifar_tiny, teacher_checkpoint=teacher,
                                     per_class=PER_CLASS, batch_size=2 * B,
                                     max_epochs=EPOCHS, extra=SETTINGS)
    record = str(root / 'record')
    assert record_teacher(base, out=record, chunk=8, interactive=False)['complete']
    probes = root / 'probes'
    probes.mkdir()
    (probes / f'{PROBE}.py').write_text(PROBE_SOURCE)

    def config(name, batch_size):
        path = root / f'{name}.py'
        path.write_text(textwrap.dedent(f'''
            _base_ = [{base!r}]
            model = dict(teacher_outputs={record!r})
            train_dataloader = dict(batch_size={batch_size})
            custom_imports = dict(imports=[{PROBE!r}], allow_failed_imports=False)
            custom_hooks = [dict(type='RecordReadProbe', out={str(root / name)!r} + '_rank%d.pt')]
        '''))
        return str(path)

    return dict(root=root, record=record, probes=str(probes),
                one=config('one', 2 * B), two=config('two', B))


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def one(setup):
    """The one-process run (batch 2B), in this process."""
    from mmengine.config import Config

    from conftest import build_runner
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(setup['probes'])
        cfg = Config.fromfile(setup['one'])
        cfg.work_dir = str(setup['root'] / 'one_work')
        cfg.experiment_name = 'record_ddp_one'
        build_runner(cfg).train()
    return load(str(setup['root'] / 'one_rank0.pt'))


@pytest.fixture(scope='module')
def two(setup):
    """The two-process run (batch B each), through tools/dist_train.sh."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('PYTHONPATH', setup['probes'], prepend=os.pathsep)
        dist_train(setup['two'], setup['root'] / 'two_work', setup['root'])
    return [load(str(setup['root'] / f'two_rank{r}.pt')) for r in range(2)]


def by_view(runs):
    """{(epoch, position): (sample id, input, scores, teacher logits)} of a run's
    processes; fails on a view read twice."""
    views = {}
    for run in runs:
        for step in run['steps']:
            for i, (_, epoch, position, sample_id) in enumerate(step['keys'].tolist()):
                assert (epoch, position) not in views, (epoch, position)
                views[epoch, position] = (sample_id, step['inputs'][i], step['scores'][i],
                                          step['teacher'][i])
    return views


def assert_read_from_record(record, runs):
    """Every teacher logit a process used is the record's at its (epoch, position)."""
    rec = TeacherRecord.open(record)
    for run in runs:
        for step in run['steps']:
            keys = step['keys']
            epochs = keys[:, 1].unique().tolist()
            assert len(epochs) == 1
            want = rec.logits(epochs[0], keys[:, 2].tolist())
            assert torch.equal(step['teacher'], want), step['iter']


def test_one_process_reads_the_records_view_at_each_position(setup, one):
    assert [s['iter'] for s in one['steps']] == list(range(EPOCHS * 3))
    assert [len(s['keys']) for s in one['steps']] == [8, 8, 4] * EPOCHS
    assert_read_from_record(setup['record'], [one])
    views = by_view([one])
    assert sorted(views) == [(e, p) for e in range(EPOCHS) for p in range(POSITIONS)]
    # The teacher's outputs are the record's for the view, which differs between epochs.
    assert not torch.equal(views[0, 0][3], views[1, 0][3])


def test_two_processes_read_the_one_process_views(setup, one, two):
    # (a) each process read the record's logits; together, every view once.
    assert_read_from_record(setup['record'], two)
    mine, ref = by_view(two), by_view([one])
    assert sorted(mine) == sorted(ref)
    for key, (sample_id, inputs, scores, teacher) in ref.items():
        got = mine[key]
        assert got[0] == sample_id, key
        assert torch.equal(got[1], inputs), key
        assert torch.equal(got[2], scores), key
        assert torch.equal(got[3], teacher), key
    # Global step s holds the same views: rank batches of B, the one-process batch of 2B.
    for rank in two:
        assert [s['iter'] for s in rank['steps']] == list(range(EPOCHS * 3))
        assert [len(s['keys']) for s in rank['steps']] == [4, 4, 2] * EPOCHS
    for s, step in enumerate(one['steps']):
        union = {tuple(k[1:3]) for rank in two for k in rank['steps'][s]['keys'].tolist()}
        assert union == {tuple(k[1:3]) for k in step['keys'].tolist()}, s

    # (b) the same initial weights, and after 6 steps the same weights up to rounding
    # (DDP averages the two halves' gradients of the same global batch), far closer than
    # the distance training moved them.
    weights = one['weights']
    assert set(two[0]['weights']) == set(weights)
    moved = max(float((weights[k] - one['initial'][k]).abs().max()) for k in weights)
    assert moved > 1e-2
    for rank in two:
        for key, value in weights.items():
            assert torch.equal(rank['initial'][key], one['initial'][key]), key
            assert torch.allclose(rank['weights'][key], value, rtol=1e-5, atol=1e-6), (
                key, float((rank['weights'][key] - value).abs().max()))
    for key in weights:
        assert torch.equal(two[0]['weights'][key], two[1]['weights'][key]), key
