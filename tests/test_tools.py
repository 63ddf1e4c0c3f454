"""bf16 autocast (--amp), tools/benchmark.py, tools/model_zoo.py and the progress bar."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmpretrain.structures import DataSample

from kdzoo.registry import MODELS
from conftest import (build_runner, cifar_cfg, config_path, load_tool, tiny_deit,
                      tiny_resnet, write_tiny_distill_config)


def _tiny_distiller():
    return MODELS.build(dict(
        type='Distiller', student=tiny_deit(),
        teacher=dict(type='Teacher', random_init=True, model=tiny_resnet()),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10,
                               mean=[125.3, 123.0, 113.9], std=[51.6, 50.8, 51.3])))


def test_autocast_optim_wrapper_runs_the_step_in_bf16_on_cpu():
    model = _tiny_distiller().train()
    wrapper = build_optim_wrapper(model, dict(type='kdzoo.AutocastOptimWrapper',
                                              optimizer=dict(type='AdamW', lr=1e-3)))
    dtypes = []
    model.student.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    data = dict(inputs=list(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)),
                data_samples=[DataSample().set_gt_label(i) for i in range(4)])
    before = model.student.head.weight.detach().clone()
    log_vars = model.train_step(data, wrapper)
    assert dtypes == [torch.bfloat16]
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(before, model.student.head.weight)


def test_autocast_optim_wrapper_rejects_unknown_dtype():
    model = _tiny_distiller()
    try:
        build_optim_wrapper(model, dict(type='kdzoo.AutocastOptimWrapper', dtype='float8',
                                        optimizer=dict(type='AdamW', lr=1e-3)))
    except ValueError as err:
        assert 'float8' in str(err)
    else:
        raise AssertionError('dtype float8 was accepted')


def test_train_amp_flag_selects_autocast(tmp_path, cifar_tiny):
    train = load_tool('train')
    cfg_file = write_tiny_distill_config(tmp_path / 'tiny.py', cifar_tiny, per_class=1)
    args = train.parse_args([cfg_file, '--amp', '--work-dir', str(tmp_path)])
    from mmengine.config import Config
    cfg = train.merge_args(Config.fromfile(cfg_file), args)
    assert cfg.optim_wrapper.type == 'kdzoo.AutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'


def test_benchmark_measures_with_and_without_teacher(tmp_path, cifar_tiny, capsys):
    benchmark = load_tool('benchmark')
    cfg_file = write_tiny_distill_config(tmp_path / 'tiny.py', cifar_tiny)
    speed = benchmark.main([cfg_file, '--batch-size', '4', '--iters', '2', '--warmup', '1',
                            '--rounds', '1'])
    assert set(speed) == {'with teacher', 'student alone'}
    assert all(v > 0 for v in speed.values())
    out = capsys.readouterr().out
    assert 'images/s' in out and 'peak memory' in out and 'teacher overhead' in out


def test_benchmark_gives_a_teacher_with_a_view_its_view(tmp_path, cifar_tiny, monkeypatch):
    """The synthetic batch carries the views that the config's teachers ask for, and the
    teacher runs on its view."""
    benchmark = load_tool('benchmark')
    extra = "model['student'].update(img_size=16)\nmodel['teacher'].update(view=dict(size=24))\n"
    cfg_file = write_tiny_distill_config(tmp_path / 'tiny.py', cifar_tiny, extra=extra)
    from kdzoo.models import Teacher
    seen = []
    forward = Teacher.forward
    monkeypatch.setattr(Teacher, 'forward', lambda self, x, *a: seen.append(x.shape[-1])
                        or forward(self, x, *a))
    benchmark.main([cfg_file, '--batch-size', '4', '--iters', '1', '--warmup', '1',
                    '--rounds', '1'])
    assert seen and set(seen) == {24}


def test_benchmark_takes_the_run_precision(tmp_path, cifar_tiny, capsys, monkeypatch):
    """Each variant trains at the run's precision: --fp32, --amp, or the config's ('auto'
    follows the CPU's flags); the header names it with the device."""
    import mmengine.optim
    benchmark = load_tool('benchmark')
    cfg_file = write_tiny_distill_config(tmp_path / 'tiny.py', cifar_tiny)
    wrappers = []
    build = mmengine.optim.build_optim_wrapper
    monkeypatch.setattr(mmengine.optim, 'build_optim_wrapper', lambda model, cfg: (
        wrappers.append(cfg['type']), build(model, cfg))[1])
    import kdzoo.numerics as numerics
    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: False)
    for flags, precision, wrapper in ((['--fp32'], 'fp32', 'OptimWrapper'),
                                      (['--amp'], 'bf16', 'kdzoo.AutocastOptimWrapper'),
                                      ([], 'fp32', 'OptimWrapper')):
        wrappers.clear()
        benchmark.main([cfg_file, '--batch-size', '2', '--iters', '1', '--warmup', '0',
                        '--rounds', '1', *flags])
        assert f'precision {precision},' in capsys.readouterr().out
        assert wrappers == [wrapper]


def test_benchmark_student_alone_skips_the_teacher(tmp_path, cifar_tiny, monkeypatch):
    benchmark = load_tool('benchmark')
    cfg_file = write_tiny_distill_config(tmp_path / 'tiny.py', cifar_tiny)
    from kdzoo.models import Teacher
    calls = []
    original = Teacher.forward
    monkeypatch.setattr(Teacher, 'forward',
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    benchmark.main([cfg_file, '--batch-size', '2', '--iters', '1', '--warmup', '0',
                    '--rounds', '1'])
    # One step with the teacher, one step with the student alone.
    assert len(calls) == 1


def test_model_zoo_tables_are_current_and_staleness_is_detected(monkeypatch):
    zoo = load_tool('model_zoo')
    assert zoo.main(['--check']) == 0
    monkeypatch.setattr(zoo, 'render_table', lambda meta: '| changed |')
    assert zoo.main(['--check']) == 1


def test_metafile_params_match_the_built_student():
    zoo = load_tool('model_zoo')
    meta = zoo.load_metafile(config_path('metafile').replace('.py', '.yml'))
    entry = next(m for m in meta['Models'] if m['Name'] == 'deit_ti_distilled')
    from mmengine.config import Config
    cfg = Config.fromfile(config_path('deit_ti_distilled'))
    net = MODELS.build(cfg.model.student)
    assert entry['Metadata']['Parameters'] == sum(p.numel() for p in net.parameters())


def test_progress_bar_hook_counts_every_iteration(tmp_path, cifar_tiny, monkeypatch):
    # What tqdm draws depends on its redraw interval (wall-clock time), so the bars are
    # recorded as the hook drives them: their totals, descriptions and updates.
    import kdzoo.engine.progress_hook as progress_hook
    bars = []

    class RecordingBar:
        def __init__(self, total, desc, **kwargs):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            bars.append(self)

        def update(self, n):
            self.n += n

        def set_postfix(self, **kwargs):
            self.postfix = kwargs

        def close(self):
            self.closed = True

    monkeypatch.setattr(progress_hook, 'tqdm', RecordingBar)
    cfg = cifar_cfg('resnet20_cifar10', cifar_tiny, tmp_path, batch_size=50, per_class=10,
                    progress_bar=True, model=dict(student=tiny_resnet()))
    cfg.train_cfg.val_interval = 1
    runner = build_runner(cfg)
    runner.train()
    assert [(b.desc, b.total, b.n, b.closed) for b in bars] == [
        ('epoch 1/1', 2, 2, True), ('val', 2, 2, True)]
    assert 'loss' in bars[0].postfix

def test_benchmark_compares_configs_eager_and_compiled(tmp_path, cifar_tiny, capsys):
    benchmark = load_tool('benchmark')
    distilled = write_tiny_distill_config(tmp_path / 'tiny.py', cifar_tiny)
    speed = benchmark.main([distilled, config_path('resnet20_cifar10'), '--batch-size', '2',
                            '--iters', '1', '--warmup', '1', '--rounds', '1', '--compile',
                            '--cfg-options', 'model.compile.backend=eager'])
    assert set(speed) == {f'{name}{kind}' for kind in ('', ', compiled') for name in (
        'tiny: with teacher', 'tiny: student alone', 'resnet20_cifar10: student alone')}
    out = capsys.readouterr().out
    assert 'ratio' in out and out.count('compiled') == 3


def test_benchmark_model_flops_utilisation_arithmetic():
    benchmark = load_tool('benchmark')
    # DeiT-S: 4.61 GMACs per image; 1000 images/s on a 989.4 TFLOP/s device:
    # 1000 * 3 * 2 * 4.61e9 / 989.4e12 = 2.8%.
    macs = benchmark.zoo_flops(config_path('deit_s'))
    assert macs == 4608338304
    assert benchmark.model_flops_utilisation(1000, macs, 989.4) == pytest.approx(
        1000 * 6 * macs / 989.4e12)
    assert benchmark.zoo_flops(config_path('deit_micro_cifar10_full')) is not None
    assert benchmark.device_peak('cpu', 312.0) == 312.0
