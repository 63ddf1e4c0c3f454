"""Sweeps (kdzoo.apis.run_sweep, tools/sweep.py): configs x seeds, resumable, mean +- std
table, CSV and validation curves; the quickstart's argument handling."""
import csv
import glob
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from mmengine.hooks import Hook

from conftest import load_tool, save_tiny_teacher, write_tiny_distill_config
from kdzoo.apis import ConfigError, run_sweep
from kdzoo.apis import sweep as sweep_module
from kdzoo.apis.sweep_report import read_curve
from kdzoo.registry import HOOKS

OPTIONS = {'train_cfg.max_epochs': 2, 'train_cfg.val_interval': 1}


@HOOKS.register_module(force=True)
class StopBeforeSecondEpoch(Hook):
    """Stands for an interruption: after epoch 1 has been checkpointed and validated."""

    def before_train_epoch(self, runner):
        if runner.epoch == 1:
            raise RuntimeError('interrupted before epoch 2')


def log_folders(run_dir):
    return sorted(glob.glob(osp.join(run_dir, '2*')))


@pytest.fixture(scope='module')
def tiny_configs(cifar_tiny, tmp_path_factory):
    """Two tiny distillation configs (another alpha) with a teacher checkpoint."""
    root = tmp_path_factory.mktemp('sweep_cfg')
    teacher = save_tiny_teacher(root / 'teacher.pth')
    a = write_tiny_distill_config(root / 'tiny_a.py', cifar_tiny, teacher_checkpoint=teacher)
    b = write_tiny_distill_config(root / 'tiny_b.py', cifar_tiny, teacher_checkpoint=teacher,
                                  extra='model["alpha"] = 0.3\n')
    return a, b


@pytest.fixture(scope='module')
def swept(tiny_configs, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('sweep') / 'sweep')
    lines = []
    rows, table = run_sweep(list(tiny_configs), [0, 1], work_dir, OPTIONS, log=lines.append)
    return dict(work_dir=work_dir, rows=rows, table=table, lines=lines)


def markers(work_dir, name):
    out = []
    for seed in (0, 1):
        with open(osp.join(work_dir, name, f'seed{seed}', 'result.json')) as f:
            out.append(json.load(f))
    return out


def test_every_run_logged_once(swept):
    lines = swept['lines']
    assert sum('started' in ln for ln in lines) == 4
    finished = [ln for ln in lines if 'finished in' in ln]
    assert len(finished) == 4 and all('joint/top1 = ' in ln for ln in finished)
    assert '[1/4] tiny_a seed 0: started' in lines[0]


def test_table_is_mean_and_sample_std_of_the_seeds(swept):
    work_dir = swept['work_dir']
    with open(osp.join(work_dir, 'results.csv')) as f:
        rows = {r['config']: r for r in csv.DictReader(f)}
    assert set(rows) == {'tiny_a', 'tiny_b'}
    for name, row in rows.items():
        runs = markers(work_dir, name)
        assert [r['seed'] for r in runs] == [0, 1]
        assert row['n_seeds'] == '2'
        for key in ('joint/top1', 'cls/top1', 'dist/top1', 'teacher/top1'):
            values = np.array([r['metrics'][key] for r in runs])
            assert float(row[f'{key} mean']) == pytest.approx(values.mean())
            assert float(row[f'{key} std']) == pytest.approx(values.std(ddof=1))
        per_seed = [float(v) for v in row['joint/top1 per seed'].split()]
        assert per_seed == pytest.approx([r['metrics']['joint/top1'] for r in runs])
        assert float(row['wall_s mean']) == pytest.approx(np.mean([r['wall_s'] for r in runs]))
        values = [r['metrics']['joint/top1'] for r in runs]
        cell = f'{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}'
        assert f'| {name} | 2 | {cell} |' in swept['table']
    with open(osp.join(work_dir, 'results.md')) as f:
        assert swept['table'] in f.read()


def test_seeds_set_the_runs_randomness(swept, tiny_configs, tmp_path):
    """Seed k is the run's seed (log and checkpoint), the two seeds train different
    weights, and seed 0 run again elsewhere trains the same weights bit for bit."""
    import torch
    work_dir = swept['work_dir']

    def weights(run_dir):
        ckpt = torch.load(osp.join(run_dir, 'epoch_2.pth'), map_location='cpu',
                          weights_only=True)
        return ckpt['meta']['seed'], ckpt['state_dict']

    runs = {}
    for seed in (0, 1):
        run_dir = osp.join(work_dir, 'tiny_a', f'seed{seed}')
        folder = log_folders(run_dir)[0]
        with open(glob.glob(osp.join(folder, '*.log'))[0]) as f:
            assert f'seed: {seed}' in f.read()
        runs[seed] = weights(run_dir)
        assert runs[seed][0] == seed
    assert any(not torch.equal(v, runs[1][1][k]) for k, v in runs[0][1].items())
    again = str(tmp_path / 'again')
    run_sweep([tiny_configs[0]], [0], again, OPTIONS, log=lambda s: None)
    seed, state = weights(osp.join(again, 'tiny_a', 'seed0'))
    assert seed == 0 and state.keys() == runs[0][1].keys()
    for key, value in state.items():
        assert torch.equal(value, runs[0][1][key]), key


def test_curves_read_back_and_png_written(swept):
    work_dir = swept['work_dir']
    curve = read_curve(osp.join(work_dir, 'tiny_b', 'seed1'), 'joint/top1')
    assert list(curve) == [1, 2]
    assert curve[2] == pytest.approx(markers(work_dir, 'tiny_b')[1]['metrics']['joint/top1'])
    with open(osp.join(work_dir, 'curves.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_second_invocation_skips_finished_runs(swept, tiny_configs, monkeypatch):
    work_dir = swept['work_dir']
    before = {d: log_folders(d) for d in glob.glob(osp.join(work_dir, '*', 'seed*'))}

    def must_not_train(cfg):
        raise AssertionError(f'trained {cfg.work_dir} again')
    monkeypatch.setattr(sweep_module, 'train_and_test', must_not_train)
    lines = []
    rows, table = run_sweep(list(tiny_configs), [0, 1], work_dir, OPTIONS, log=lines.append)
    assert sum('skipped' in ln for ln in lines) == 4 and not any('started' in ln for ln in lines)
    assert {d: log_folders(d) for d in before} == before
    assert table == swept['table']


def test_other_settings_in_the_same_work_dir_are_refused(swept, tiny_configs):
    with pytest.raises(ConfigError, match='other settings'):
        run_sweep([tiny_configs[0]], [0], swept['work_dir'],
                  dict(OPTIONS, **{'model.alpha': 0.9}), log=lambda s: None)


def test_interrupted_run_resumes_from_its_checkpoint(tiny_configs, tmp_path):
    work_dir = str(tmp_path / 'sweep')
    lines = []
    with pytest.raises(RuntimeError, match='interrupted'):
        run_sweep([tiny_configs[0]], [3], work_dir,
                  dict(OPTIONS, custom_hooks=[dict(type='StopBeforeSecondEpoch')]),
                  log=lines.append)
    run_dir = osp.join(work_dir, 'tiny_a', 'seed3')
    assert 'failed' in lines[-1]
    assert not osp.exists(osp.join(run_dir, 'result.json'))
    assert osp.isfile(osp.join(run_dir, 'epoch_1.pth'))
    lines = []
    run_sweep([tiny_configs[0]], [3], work_dir, OPTIONS, log=lines.append)
    record = markers_one(run_dir)
    assert record['resumed_from'].endswith('epoch_1.pth')
    assert 'resumed from epoch_1.pth' in lines[-1]
    assert len(log_folders(run_dir)) == 2
    # Epoch 1 was validated before the interruption, epoch 2 after the resume.
    assert list(read_curve(run_dir, 'joint/top1')) == [1, 2]


def test_an_interrupted_sweep_keeps_the_summary_of_its_finished_runs(tiny_configs, tmp_path,
                                                                     monkeypatch):
    work_dir = str(tmp_path / 'sweep')
    started = []

    def first_finishes_second_breaks(cfg):
        started.append(cfg.work_dir)
        os.makedirs(cfg.work_dir, exist_ok=True)
        if len(started) == 2:
            raise RuntimeError('interrupted in the second run')
        return {'joint/top1': 41.0}, None
    monkeypatch.setattr(sweep_module, 'train_and_test', first_finishes_second_breaks)
    with pytest.raises(RuntimeError, match='second run'):
        run_sweep([tiny_configs[0]], [0, 1], work_dir, OPTIONS, log=lambda s: None)
    with open(osp.join(work_dir, 'results.csv'), newline='') as f:
        rows = list(csv.DictReader(f))
    assert [(r['config'], r['seeds'], r['joint/top1 per seed']) for r in rows] == [
        ('tiny_a', '0', '41.0')]
    assert '41.00' in (tmp_path / 'sweep' / 'results.md').read_text()


def markers_one(run_dir):
    with open(osp.join(run_dir, 'result.json')) as f:
        return json.load(f)


def test_bad_arguments_are_refused_before_any_work(tiny_configs, tmp_path):
    work_dir = str(tmp_path / 'never')
    with pytest.raises(ConfigError, match='neither a file nor a shipped config'):
        run_sweep(['deit_micro_cifar1O'], [0], work_dir)
    with pytest.raises(ConfigError, match='at least one seed'):
        run_sweep([tiny_configs[0]], [], work_dir)
    with pytest.raises(ConfigError, match='seeds repeat'):
        run_sweep([tiny_configs[0]], [1, 1], work_dir)
    with pytest.raises(ConfigError, match='randomness.seed is set by the sweep'):
        run_sweep([tiny_configs[0]], [0], work_dir, {'randomness.seed': 4})
    shutil.copy(tiny_configs[0], tmp_path / 'tiny_b.py')
    with pytest.raises(ConfigError, match="two configs are named 'tiny_b'"):
        run_sweep([tiny_configs[1], str(tmp_path / 'tiny_b.py')], [0], work_dir)
    assert not osp.exists(work_dir)


def test_tool_reports_bad_arguments(tmp_path, capsys):
    tool = load_tool('sweep')
    with pytest.raises(SystemExit) as info:  # a usage error, before any work
        tool.main(['no_such_config', '--seeds', '0', '--work-dir', str(tmp_path)])
    assert info.value.code == 2
    assert "config 'no_such_config' is neither" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(['deit_micro_cifar10', '--work-dir', str(tmp_path)])
    assert '--seeds' in capsys.readouterr().err


def test_unknown_metric_names_the_available_ones(tiny_configs, tmp_path):
    with pytest.raises(ConfigError, match=r"metric 'joint/top7' .*'joint/top1'"):
        run_sweep([tiny_configs[0]], [0], str(tmp_path / 's'),
                  {'train_cfg.max_epochs': 1}, metric='joint/top7', log=lambda s: None)


def test_quickstart_arguments(capsys):
    quickstart = load_tool('quickstart')
    args = quickstart.parse_args([])
    assert (args.epochs_teacher, args.epochs_student, args.seeds) == (6, 3, [0])
    args = quickstart.parse_args(['--epochs-student', '5', '--seeds', '0', '1'])
    assert (args.epochs_student, args.seeds) == (5, [0, 1])
    for bad, message in ((['--epochs-student', '1'], '--epochs-student must be at least 2'),
                         (['--epochs-teacher', '0'], '--epochs-teacher must be at least 2'),
                         (['--seeds', '1', '1'], '--seeds must be distinct'),
                         (['--seeds', '-1'], '--seeds must be distinct')):
        with pytest.raises(SystemExit):
            quickstart.parse_args(bad)
        assert message in capsys.readouterr().err


def test_quickstart_schedule_keeps_the_dearkd_stages(cifar_tiny):
    from mmengine.config import Config

    from kdzoo.apis import find_config
    from kdzoo.engine.stage_hook import DistillStageHook
    quickstart = load_tool('quickstart')
    cfg = quickstart.prepare('dearkd/dearkd_micro_cifar10', cifar_tiny, 6, 2, '/teacher')
    assert cfg.train_cfg.max_epochs == 6 and cfg.train_cfg.val_interval == 1
    warm, cosine = cfg.param_scheduler
    assert (warm.end, cosine.begin, cosine.end, cosine.T_max) == (2, 2, 6, 4)
    assert cfg.model.teacher.checkpoint == '/teacher'
    assert cfg.test_dataloader.dataset.data_root == cifar_tiny
    # switch_ratio 250/300 of 6 epochs: stage 1 in epochs 1-5, stage 2 in epoch 6.
    hook = DistillStageHook(**{k: v for k, v in cfg.default_hooks.distill_stage.items()
                               if k != 'type'})
    assert round(hook.switch_ratio * 6) == 5
    plain = quickstart.prepare('deit/deit_micro_cifar10', cifar_tiny, 4, 2, '/teacher')
    assert 'teacher' not in plain.model
    # A switch given as an epoch moves with the schedule.
    cfg = Config.fromfile(find_config('dearkd/dearkd_micro_cifar10'))
    cfg.default_hooks.distill_stage = dict(type='DistillStageHook', switch_epoch=15)
    quickstart.rescale_schedule(cfg, 4, 1)
    assert cfg.default_hooks.distill_stage.switch_epoch == 3
