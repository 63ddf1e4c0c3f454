"""Subnormal floats flushed on the CPU in every intra-op thread, and the precision policy
(env_cfg.precision, --amp, --fp32) of kdzoo/numerics.py."""
import os
import platform
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config

import kdzoo.numerics as numerics
from conftest import REPO, build_runner, cifar_cfg, load_tool, write_tiny_distill_config

# Each check runs in a fresh process with 2 intra-op threads: the float mode is per thread
# and per process, and this one's test process keeps 1 thread.
PROBE = textwrap.dedent('''
    import sys, torch
    import kdzoo.numerics as numerics
    torch.set_num_threads(2)
    # Subnormal inputs (made from their bits), one chunk per thread.
    x = torch.full((2 * 4 * 32768,), numerics.SUBNORMAL_BITS, dtype=torch.int32).view(torch.float32)
    assert (x * 1.0).ne(0).all()                   # nothing flushed yet, in either thread
    if sys.argv[1] == 'no-restart':                # the plant: the workers are not renewed
        numerics.restart_intra_op_threads = lambda: False
    cfg = {'env_cfg': {'flush_denormal': sys.argv[2] == 'on'}} if len(sys.argv) > 2 else None
    flushed = numerics.flush_denormals(cfg)
    halves = (x * 1.0).view(2, -1).ne(0).sum(1).tolist()   # subnormals left per thread
    print(flushed, numerics.intra_op_flush_check(), halves[0], halves[1])
''')


def probe(*argv, env=None):
    out = subprocess.run([sys.executable, '-c', PROBE, *argv], capture_output=True, text=True,
                         cwd=REPO, env=dict(os.environ, **(env or {})), timeout=120)
    assert out.returncode == 0, out.stderr
    flushed, checked, first, second = out.stdout.split()
    return flushed == 'True', checked == 'True', int(first), int(second)


needs_x86_flag = pytest.mark.skipif(platform.machine().lower() not in ('x86_64', 'amd64'),
                                    reason='flush-to-zero is an x86 (SSE) flag in torch')


@needs_x86_flag
def test_subnormals_are_flushed_in_every_intra_op_thread():
    """Set after torch's OpenMP worker exists, the flag reaches it only because the
    workers are renewed: without that (the plant), the worker's half keeps its
    subnormals."""
    assert probe('restart', env={numerics.FLUSH_ENV: ''}) == (True, True, 0, 0)
    flushed, checked, first, second = probe('no-restart', env={numerics.FLUSH_ENV: ''})
    assert flushed and first == 0
    assert not checked and second > 0


@needs_x86_flag
@pytest.mark.parametrize('how', ['environment', 'config'])
def test_flushing_can_be_switched_off(how):
    if how == 'environment':
        result = probe('restart', 'on', env={numerics.FLUSH_ENV: '0'})  # env wins
    else:
        result = probe('restart', 'off', env={numerics.FLUSH_ENV: ''})
    flushed, checked, first, second = result
    assert not flushed and not checked
    assert first == second == 4 * 32768


def test_bad_switch_values_are_refused(monkeypatch):
    monkeypatch.setenv(numerics.FLUSH_ENV, 'maybe')
    with pytest.raises(ValueError, match='KDZOO_FLUSH_DENORMAL.*use 1.*or 0'):
        numerics.flush_denormal_wanted()
    monkeypatch.delenv(numerics.FLUSH_ENV)
    with pytest.raises(ValueError, match='flush_denormal must be True or False'):
        numerics.flush_denormal_wanted(Config(dict(env_cfg=dict(flush_denormal='no'))))
    assert numerics.flush_denormal_wanted(Config(dict(env_cfg=dict()))) is True


# ----- precision policy ------------------------------------------------------------------------
def cfg_with(precision=None):
    env = {} if precision is None else dict(precision=precision)
    return Config(dict(env_cfg=env))


@pytest.mark.parametrize('native', [True, False])
def test_auto_precision_follows_the_cpu(native, monkeypatch):
    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: native)
    expected = 'bf16' if native else 'fp32'
    assert numerics.default_precision(cfg_with('auto'), 'cpu') == expected
    # Explicit settings and the flags do not ask the CPU.
    assert numerics.default_precision(cfg_with('bf16'), 'cpu') == 'bf16'
    assert numerics.default_precision(cfg_with('fp32'), 'cpu') == 'fp32'
    assert numerics.default_precision(cfg_with(), 'cpu') == 'fp32'  # no key: float32


def test_flags_win_over_the_config(monkeypatch):
    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: True)
    assert numerics.default_precision(cfg_with('fp32'), 'cpu', amp=True) == 'bf16'
    assert numerics.default_precision(cfg_with('auto'), 'cpu', fp32=True) == 'fp32'
    assert numerics.default_precision(cfg_with('bf16'), 'cpu', fp32=True) == 'fp32'
    with pytest.raises(ValueError, match='--amp .* --fp32 contradict'):
        numerics.default_precision(cfg_with(), 'cpu', amp=True, fp32=True)
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16', 'auto'\)"):
        numerics.default_precision(cfg_with('fp16'), 'cpu')


def test_shipped_default_is_bf16_where_native(monkeypatch):
    from conftest import config_path
    cfg = Config.fromfile(config_path('deit_micro_cifar10'))
    assert cfg.env_cfg.precision == 'auto'
    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: True)
    assert numerics.default_precision(cfg, 'cpu') == 'bf16'
    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: False)
    assert numerics.default_precision(cfg, 'cpu') == 'fp32'


def test_cpu_flags_are_read_from_cpuinfo():
    x86 = 'processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n'
    arm = 'processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n'
    assert 'avx512_bf16' in numerics.cpu_flags(x86)
    assert 'bf16' in numerics.cpu_flags(arm)
    assert not numerics.cpu_flags('flags\t: fpu sse avx2\n') & {'avx512_bf16', 'amx_bf16',
                                                                  'bf16'}


def test_train_tool_takes_the_precision(tmp_path, cifar_tiny, monkeypatch):
    train = load_tool('train')
    cfg_file = write_tiny_distill_config(tmp_path / 'tiny.py', cifar_tiny, per_class=1)

    def merged(*argv):
        args = train.parse_args([cfg_file, '--work-dir', str(tmp_path), *argv])
        return train.merge_args(Config.fromfile(cfg_file), args).optim_wrapper

    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: False)
    assert merged().type != 'kdzoo.AutocastOptimWrapper'  # 'auto' without native bf16
    assert merged('--cfg-options', 'env_cfg.precision=bf16').type == \
        'kdzoo.AutocastOptimWrapper'
    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: True)
    assert merged('--cfg-options', 'env_cfg.precision=auto').type == \
        'kdzoo.AutocastOptimWrapper'
    assert merged('--fp32', '--cfg-options', 'env_cfg.precision=auto').type == 'OptimWrapper'
    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: False)
    assert merged('--cfg-options', 'env_cfg.precision=auto').type != \
        'kdzoo.AutocastOptimWrapper'
    with pytest.raises(SystemExit, match='contradict'):
        merged('--amp', '--fp32')


def test_test_tool_takes_the_precision(tmp_path, cifar_tiny, monkeypatch):
    """tools/test.py: env_cfg.precision=bf16 tests under bf16 autocast (kdzoo's
    AutocastTestLoop), --fp32 in the plain loop."""
    test = load_tool('test')
    cfg_file = write_tiny_distill_config(tmp_path / 'tiny.py', cifar_tiny, per_class=1)
    seen = {}

    class Stop(Exception):
        pass

    def stop(cfg):
        seen['test_cfg'] = cfg.get('test_cfg')
        raise Stop

    monkeypatch.setattr('kdzoo.engine.Runner.from_cfg', stop)
    ckpt = tmp_path / 'any.pth'
    ckpt.write_bytes(b'')
    for argv, loop in ((['--cfg-options', 'env_cfg.precision=bf16'], 'kdzoo.AutocastTestLoop'),
                       (['--fp32', '--cfg-options', 'env_cfg.precision=bf16'], None)):
        with pytest.raises(Stop):
            test.main([cfg_file, str(ckpt), '--work-dir', str(tmp_path), *argv])
        assert seen['test_cfg'].get('type') == loop
        assert 'fp16' not in seen['test_cfg']


def test_bf16_precision_trains_under_autocast(tmp_path, cifar_tiny):
    """A run whose config says precision='bf16' takes its steps under bf16 autocast (the
    student's head computes in bf16) and learns; the Runner reports the flush setting."""
    train = load_tool('train')
    cfg = cifar_cfg('deit_micro_cifar10', cifar_tiny, tmp_path, batch_size=8, per_class=1,
                    max_epochs=1)
    args = train.parse_args(['deit_micro_cifar10', '--work-dir', str(tmp_path), '--no-validate',
                             '--cfg-options', 'env_cfg.precision=bf16'])
    cfg = train.merge_args(cfg, args)
    runner = build_runner(cfg)
    dtypes = []
    net = runner.model.student if hasattr(runner.model, 'student') else runner.model
    head = getattr(net, 'head', None) or net.backbone
    head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = [p.detach().clone() for p in runner.model.parameters() if p.requires_grad]
    runner.train()
    assert type(runner.optim_wrapper).__name__ == 'AutocastOptimWrapper'
    assert dtypes and set(dtypes) == {torch.bfloat16}
    after = [p for p in runner.model.parameters() if p.requires_grad]
    assert any(not torch.equal(b, a) for b, a in zip(before, after))
    assert runner.flush_denormal == numerics.flush_denormal_wanted(cfg)
