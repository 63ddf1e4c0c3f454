"""Teacher records of named teachers and of teachers with a view of their own.

Two teachers of one distiller, ``teachers.a`` on the student's 16 px batch and
``teachers.b`` on its own 32 px view of the same crop, each recorded by the recording tool
(``record_teacher(..., teacher=NAME)``) and read back with
``model.teacher_outputs=dict(a=..., b=...)``: the run trains as the run
with both teachers online, builds neither network, reports both teachers' accuracy from the
records, and a record made for another teacher or another view is refused before any step.
"""
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from conftest import build_runner, save_tiny_teacher, tiny_resnet, write_tiny_distill_config
from kdzoo.apis import ConfigError
from kdzoo.apis.record_teacher import default_out, record_teacher
from kdzoo.records import RecordError, TeacherRecord
from kdzoo.registry import HOOKS

PER_CLASS, BATCH, EPOCHS = 2, 4, 2  # 20 images: 5 steps an epoch, 10 in all

SETTINGS = '''
model['student'].update(img_size=16)
_teacher = dict(type='Teacher', model={tiny!r})
model.update(
    teacher=None, distill_loss=None,
    teachers=dict(a=dict(_teacher, checkpoint={a!r}),
                  b=dict(_teacher, checkpoint={b!r}, view=dict(size=32))),
    distill=dict(kd=dict(loss=dict(type='EnsembleKDLoss', tau=4.0), weight=0.5, mix=True,
                         inputs=dict(teacher_logits=['teachers.a.logits',
                                                     'teachers.b.logits']))))
env_cfg = dict(precision='fp32')
train_dataloader['dataset']['pipeline'] = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Resize', scale=16),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5),
    dict(type='PackInputs'),
]
val_dataloader['dataset']['pipeline'] = [dict(type='LoadImageFromFile'),
                                         dict(type='Resize', scale=16),
                                         dict(type='PackInputs')]
test_dataloader = val_dataloader
train_cfg['val_interval'] = {epochs}
custom_hooks = [dict(type='NamedRecordProbe')]
'''


@HOOKS.register_module(force=True)
class NamedRecordProbe(Hook):
    """The logged losses of every step and the calls of each named teacher in training."""

    priority = 'LOWEST'

    def __init__(self):
        self.losses, self.calls = {}, {}

    def before_train(self, runner):
        for name, teacher in runner.model.teachers.items():
            self.calls[name] = 0
            teacher.register_forward_hook(
                lambda module, *_, name=name: self._called(module, name))

    def _called(self, module, name):
        self.calls[name] += self._training

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._training = True

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._training = False
        self.losses[runner.iter] = {k: float(v.detach()) for k, v in outputs.items()
                                    if k.startswith('loss')}

    _training = False


@pytest.fixture(scope='module')
def setup(cifar_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp('named_records')
    a = save_tiny_teacher(root / 'a.pth', seed=4)
    b = save_tiny_teacher(root / 'b.pth', seed=5)
    config = write_tiny_distill_config(
        root / 'two.py', cifar_tiny, teacher_checkpoint=a, per_class=PER_CLASS,
        batch_size=BATCH, max_epochs=EPOCHS,
        extra=SETTINGS.format(tiny=tiny_resnet(), a=a, b=b, epochs=EPOCHS))
    records = {}
    for name in ('a', 'b'):
        out = record_teacher(str(config), out=str(root / f'record_{name}'), dtype='float32',
                             teacher=name, interactive=False)
        assert out['complete']
        records[name] = out['out']
    return dict(root=root, config=str(config), records=records, a=a, b=b)


def load_cfg(setup, name, **options):
    cfg = Config.fromfile(setup['config'])
    cfg.work_dir = str(setup['root'] / name)
    cfg.experiment_name = f'named_{uuid.uuid4().hex[:8]}'
    cfg.merge_from_dict(options)
    return cfg


def train(cfg):
    runner = build_runner(cfg)
    runner.train()
    probe = next(h for h in runner.hooks if isinstance(h, NamedRecordProbe))
    return runner, probe


@pytest.fixture(scope='module')
def runs(setup):
    online = train(load_cfg(setup, 'online'))
    offline = train(load_cfg(setup, 'offline', **{'model.teacher_outputs': setup['records']}))
    return online, offline


def test_the_view_teacher_is_recorded_on_its_view(setup):
    """Each record holds its own teacher on its own input: b's logits on the 32 px view
    differ from what b says of the student's 16 px batch."""
    a = TeacherRecord.open(setup['records']['a'])
    b = TeacherRecord.open(setup['records']['b'])
    assert a.fingerprint['teacher'].get('view') is None
    assert b.fingerprint['teacher']['view'] == dict(size=32)
    assert b.fingerprint['views'] == {'teachers.b': dict(size=32)}
    runner = build_runner(load_cfg(setup, 'probe'))
    model, loader = runner.model, runner.train_dataloader
    data = model.data_preprocessor(next(iter(loader)), training=True)
    where = [s.metainfo['replay'][2] for s in data['data_samples']]
    with torch.no_grad():
        on_view = model.run_teacher(model.teachers['b'], data['views']['teachers.b'])
        on_batch = model.run_teacher(model.teachers['b'], data['inputs'])
    recorded = b.logits(0, where)
    torch.testing.assert_close(recorded, on_view, rtol=1e-5, atol=1e-5)
    assert (recorded - on_batch).abs().max() > 1e-3


def test_records_of_two_teachers_train_as_both_online(runs):
    (_, online), (runner, offline) = runs
    assert len(online.losses) == EPOCHS * 5
    assert online.losses.keys() == offline.losses.keys()
    for step in online.losses:
        for key, value in online.losses[step].items():
            assert offline.losses[step][key] == pytest.approx(value, rel=1e-5, abs=1e-6), \
                (step, key)
    assert online.calls == {'a': EPOCHS * 5, 'b': EPOCHS * 5}
    assert len(runner.model.teachers) == 0 and offline.calls == {}  # neither is built
    assert sorted(runner.model.recorded) == ['teachers.a', 'teachers.b']


def test_both_teachers_accuracy_comes_from_their_records(runs):
    (online_runner, _), (offline_runner, _) = runs
    on = online_runner.message_hub.log_scalars
    off = offline_runner.message_hub.log_scalars
    for name in ('a', 'b'):
        key = f'val/teacher/{name}/top1'
        assert key in off, sorted(off)
        assert off[key].current() == pytest.approx(on[key].current())


def test_verify_every_checks_the_view_record_against_the_teacher(setup):
    cfg = load_cfg(setup, 'verify', **{'model.teacher_outputs': setup['records'],
                                       'model.verify_every': 2,
                                       'train_cfg.max_epochs': 1})
    runner, probe = train(cfg)
    assert sorted(runner.model.teachers) == ['a', 'b']  # built to be checked
    assert probe.calls == {'a': 3, 'b': 3}  # steps 0, 2 and 4 of 5


@pytest.mark.parametrize('outputs, options, named', [
    (lambda r: {'b': r['a']}, {}, 'teacher.checkpoint_sha256'),
    (lambda r: {'b': r['b']},
     {'model.teachers.b.view': dict(size=24)}, 'teacher.view.size'),
    (lambda r: {'a': r['a']},
     {'model.teachers.b.view': dict(size=24)}, 'views.teachers.b.size'),
])
def test_a_record_of_another_teacher_or_view_is_refused(setup, outputs, options, named):
    cfg = load_cfg(setup, f'refused_{uuid.uuid4().hex[:6]}',
                   **{'model.teacher_outputs': outputs(setup['records']), **options})
    runner = build_runner(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    with pytest.raises(RecordError, match=named.replace('.', r'\.')):
        runner.train()
    after = runner.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_unknown_teachers_are_named(setup):
    cfg = load_cfg(setup, 'bad_key', **{'model.teacher_outputs.c': setup['records']['a']})
    with pytest.raises(ValueError, match=r"names 'c'.*\['teacher', 'a', 'b'\]"):
        build_runner(cfg)
    with pytest.raises(ConfigError, match=r"no teacher 'c'.*\['a', 'b'\]"):
        record_teacher(setup['config'], teacher='c')
    cfg = load_cfg(setup, 'bad_name', **{'model.teachers.teacher': dict(type='Teacher')})
    with pytest.raises(ValueError, match=r"teacher name 'teacher'.*other than"):
        build_runner(cfg)


def test_a_named_record_has_a_folder_of_its_own():
    assert default_out('configs/x.py', 3) == 'work_dirs/records/x_seed3'
    assert default_out('configs/x.py', 3, 'b') == 'work_dirs/records/x_b_seed3'
