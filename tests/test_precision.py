"""The precision a run takes (kdzoo.numerics.apply_precision): bf16 autocast in the
training step, validation, testing and the teacher where the config or the device asks
for it, float32 otherwise, and the teacher record's fingerprint at the teacher's precision."""
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

import kdzoo.numerics as numerics
from conftest import build_runner, load_tool, save_tiny_teacher, write_tiny_distill_config
from kdzoo.engine.config_check import prepare_config
from kdzoo.records.fingerprint import teacher_cfg


def loops_of(cfg):
    return cfg.optim_wrapper.get('type'), cfg.val_cfg.get('type'), cfg.test_cfg.get('type')


def tiny_cfg(tmp_path, cifar_tiny, precision, **kw):
    path = write_tiny_distill_config(tmp_path / f'tiny_{precision}.py', cifar_tiny, **kw)
    cfg = Config.fromfile(path)
    cfg.env_cfg.precision = precision
    cfg.work_dir = str(tmp_path / precision)
    cfg.experiment_name = f'precision_{precision}_{id(cfg)}'
    return cfg


def test_apply_precision_sets_wrapper_and_loops(tmp_path, cifar_tiny, monkeypatch):
    cfg = tiny_cfg(tmp_path, cifar_tiny, 'bf16')
    assert numerics.apply_precision(cfg) == 'bf16'
    assert loops_of(cfg) == ('kdzoo.AutocastOptimWrapper', 'kdzoo.AutocastValLoop',
                             'kdzoo.AutocastTestLoop')
    assert numerics.apply_precision(cfg) == 'bf16'  # idempotent
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    # --fp32 undoes it all; the resolved precision is written back.
    assert numerics.apply_precision(cfg, fp32=True) == 'fp32'
    assert loops_of(cfg) == ('OptimWrapper', None, None)
    assert 'dtype' not in cfg.optim_wrapper and cfg.env_cfg.precision == 'fp32'
    # 'auto' follows the device; the CPU's flags decide.
    for native, expected in ((True, 'bf16'), (False, 'fp32')):
        monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: native)
        cfg = tiny_cfg(tmp_path, cifar_tiny, 'auto')
        assert numerics.apply_precision(cfg, 'cpu') == expected
        assert cfg.env_cfg.precision == expected
    # mmengine's float16 AmpOptimWrapper, named by a config, stays unless --fp32 is given.
    cfg = tiny_cfg(tmp_path, cifar_tiny, 'fp32')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    numerics.apply_precision(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    numerics.apply_precision(cfg, fp32=True)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    # A loop of the user's own keeps its settings.
    cfg = tiny_cfg(tmp_path, cifar_tiny, 'bf16')
    cfg.val_cfg = dict(type='MyValLoop', fp16=False)
    numerics.apply_precision(cfg)
    assert cfg.val_cfg == dict(type='MyValLoop', fp16=False)


def test_the_runner_resolves_the_precision(tmp_path, cifar_tiny):
    """Every run through kdzoo's Runner (train, test, sweeps, the quickstart) gets the
    config's precision, not only tools/train.py."""
    cfg = prepare_config(tiny_cfg(tmp_path, cifar_tiny, 'bf16'))
    assert loops_of(cfg)[0] == 'kdzoo.AutocastOptimWrapper'
    cfg = prepare_config(tiny_cfg(tmp_path, cifar_tiny, 'fp32'))
    assert loops_of(cfg) == ('OptimWrapper', None, None)


def record_dtypes(module, into, key):
    return module.register_forward_hook(
        lambda m, i, o: into.setdefault(key, set()).add(o.dtype))


@pytest.mark.parametrize('precision', ['bf16', 'fp32'])
def test_student_and_teacher_follow_the_run(tmp_path, cifar_tiny, precision):
    """Training steps, validation and the teacher (no ``bf16`` key) all run at the run's
    precision: bf16 heads and teacher logits under bf16, float32 under fp32."""
    teacher = save_tiny_teacher(tmp_path / 'teacher.pth')
    cfg = tiny_cfg(tmp_path, cifar_tiny, precision, teacher_checkpoint=teacher,
                   per_class=1, batch_size=10)
    cfg.train_cfg.val_interval = 1
    assert cfg.model.teacher.get('bf16') is None
    runner = build_runner(cfg)
    seen, phase = {}, {'now': 'train'}
    model = runner.model
    hooks = [model.student.head.register_forward_hook(
        lambda m, i, o: seen.setdefault(('student', phase['now']), set()).add(
            (o[0] if isinstance(o, tuple) else o).dtype)),
        model.teacher.model.register_forward_hook(
            lambda m, i, o: seen.setdefault(('teacher', phase['now']), set()).add(o.dtype))]
    runner.register_hook(PhaseHook(phase))
    runner.train()
    for h in hooks:
        h.remove()
    want = torch.bfloat16 if precision == 'bf16' else torch.float32
    assert seen[('student', 'train')] == {want}
    assert seen[('teacher', 'train')] == {want}
    assert seen[('student', 'val')] == {want}
    assert seen[('teacher', 'val')] == {want}
    expected_loop = 'AutocastValLoop' if precision == 'bf16' else 'ValLoop'
    assert type(runner.val_loop).__name__ == expected_loop


def test_a_teacher_with_its_own_precision_keeps_it(tmp_path, cifar_tiny):
    """``teacher.bf16=False`` keeps a teacher in float32 inside a bf16 run (and True in
    bf16 inside a float32 one)."""
    teacher = save_tiny_teacher(tmp_path / 'teacher.pth')
    for precision, own, want in (('bf16', False, torch.float32),
                                 ('fp32', True, torch.bfloat16)):
        cfg = tiny_cfg(tmp_path, cifar_tiny, precision, teacher_checkpoint=teacher,
                       per_class=1, batch_size=10)
        cfg.model.teacher.bf16 = own
        cfg.experiment_name += f'_{own}'
        runner = build_runner(cfg)
        seen = {}
        record_dtypes(runner.model.teacher.model, seen, 'teacher')
        runner.train()
        assert seen['teacher'] == {want}


class PhaseHook(Hook):
    """Tells the forward hooks whether a step is training or validation."""

    def __init__(self, phase):
        self.phase = phase

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.phase['now'] = 'train'

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self.phase['now'] = 'val'


def test_record_fingerprint_holds_the_teachers_precision(tmp_path, cifar_tiny, monkeypatch):
    """A teacher that follows the run is recorded at the run's precision: a record made
    in float32 does not fit a bf16 run (its logits differ), one made by a teacher with its
    own ``bf16`` fits both."""
    cfg = tiny_cfg(tmp_path, cifar_tiny, 'bf16')
    assert teacher_cfg(cfg)['bf16'] is True
    cfg.env_cfg.precision = 'fp32'
    assert teacher_cfg(cfg)['bf16'] is False
    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: True)
    cfg.env_cfg.precision = 'auto'
    assert teacher_cfg(cfg)['bf16'] is True
    cfg.model.teacher.bf16 = False
    assert teacher_cfg(cfg)['bf16'] is False


def test_sweep_and_quickstart_flags(tmp_path, monkeypatch):
    sweep = load_tool('sweep')
    seen = {}

    def run_sweep(configs, seeds, work_dir, cfg_options, metric, allow_unread=False):
        seen['options'] = cfg_options
        return [], ''

    monkeypatch.setattr('kdzoo.apis.run_sweep', run_sweep)
    for flag, want in (('--fp32', {'env_cfg.precision': 'fp32'}),
                       ('--amp', {'env_cfg.precision': 'bf16'}), (None, None)):
        sweep.main(['deit_micro_cifar10', '--seeds', '0', '--work-dir', str(tmp_path)]
                   + ([flag] if flag else []))
        assert seen['options'] == want
    with pytest.raises(SystemExit):
        sweep.parse_args(['deit_micro_cifar10', '--seeds', '0', '--amp', '--fp32'])
    quickstart = load_tool('quickstart')
    cfg = quickstart.prepare('deit/deit_micro_cifar10', str(tmp_path), 3, 1,
                             precision='fp32')
    assert cfg.env_cfg.precision == 'fp32'
    assert quickstart.prepare('deit/deit_micro_cifar10', str(tmp_path), 3, 1
                              ).env_cfg.precision == 'auto'
    assert quickstart.parse_args(['--fp32']).fp32
