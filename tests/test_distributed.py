"""A real two-process data-parallel training (gloo on CPU) through tools/dist_train.sh."""
import glob
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import REPO, save_tiny_teacher, write_tiny_distill_config


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('compiled', [False, True], ids=['eager', 'compiled'])
def test_two_process_gloo_training(cifar_tiny, tmp_path, compiled):
    # Compiled with Dynamo's eager backend: DDP around a distiller whose networks are
    # compiled, without minutes of kernel generation on a CPU.
    # A hidden term through an aligner, switched off after the first step: in stage 2 its
    # aligner has no say in the loss, and DDP runs without find_unused_parameters.
    extra = textwrap.dedent('''
        model['distill'] = dict(hidden=dict(
            loss=dict(type='HiddenMSELoss'),
            inputs=dict(student_features='student.blocks.1', teacher_features='teacher.layer3'),
            connectors=dict(student_features=dict(type='Aligner'))))
        default_hooks['distill_stage'] = dict(type='DistillStageHook', switch_iter=1)
    ''')
    if compiled:
        extra += "model['compile'] = dict(backend='eager')\n"
    config = write_tiny_distill_config(tmp_path / 'tiny_distill_dist.py', cifar_tiny,
                                       per_class=2, batch_size=6, extra=extra)
    work_dir = tmp_path / 'work'
    output = dist_train(config, work_dir, tmp_path)

    assert osp.isfile(work_dir / 'epoch_1.pth')
    assert osp.isfile(work_dir / 'last_checkpoint')
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert len(logs) == 1, logs  # rank 0 alone writes the log
    with open(logs[0]) as f:
        log = f.read()
    assert 'Distributed launcher: pytorch' in log
    assert 'Distributed training: True' in log
    # mmengine reports the world size as "GPU number", also for CPU processes.
    assert re.search(r'GPU number: 2\b', log)
    # 20 images shared by 2 processes at batch 5: 2 iterations each.
    assert re.search(r'Epoch\(train\)\s*\[1\]\[2/2\]', log)
    assert not re.search(r'\[\d+/4\]', log)
    assert 'iteration 2: switching to stage 2' in log
    assert 'find_unused_parameters' not in output

    ckpt = torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    # The wrapper is unwrapped when saving: no 'module.' prefixes.
    assert all(not k.startswith('module.') for k in ckpt['state_dict'])
    # The teacher is not training state: it is not saved.
    assert any(k.startswith('student.') for k in ckpt['state_dict'])
    assert not any(k.startswith('teacher.') for k in ckpt['state_dict'])


def launcher_env(tmp_path, **extra):
    """The environment of a launched process: kdzoo importable, one thread, no distributed
    variables of an outer run, torch.hub's cache under ``tmp_path``."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env['OMP_NUM_THREADS'] = '1'
    env['TORCH_HOME'] = str(tmp_path / 'torch_home')
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR',
                'MASTER_PORT'):
        env.pop(key, None)
    env.update(extra)
    return env


def dist_train(config, work_dir, tmp_path):
    """``tools/dist_train.sh CONFIG 2`` (seed 0) from ``tmp_path``; returns its output and
    fails the test unless it exits with 0."""
    cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, '2',
           '--work-dir', str(work_dir), '--cfg-options', 'randomness.seed=0']
    proc = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=240,
                          env=launcher_env(tmp_path, PORT=str(free_port())))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def test_url_teacher_is_downloaded_once_per_node(cifar_tiny, tmp_path):
    """tools/dist_train.sh with a file:// teacher: every process stopped in mmengine's
    get_local_rank ("Local process group is not created"), which needs a group that
    nothing creates. Now rank 0 downloads, rank 1 waits and reads the cached copy."""
    teacher = save_tiny_teacher(tmp_path / 'teacher.pth')
    config = write_tiny_distill_config(tmp_path / 'tiny_url_teacher.py', cifar_tiny,
                                       teacher_checkpoint=f'file://{teacher}', per_class=2,
                                       batch_size=6)
    work_dir = tmp_path / 'work'
    output = dist_train(config, work_dir, tmp_path)
    assert 'Local process group' not in output
    cache = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    assert os.listdir(cache) == ['teacher.pth']  # one copy, no partial download left
    with open(cache / 'teacher.pth', 'rb') as a, open(teacher, 'rb') as b:
        assert a.read() == b.read()
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        log = f.read()
    assert log.count(f'downloading file://{teacher} to {cache / "teacher.pth"}') == 1
    assert 'downloaded once per host and cache folder, by rank(s) [0]; 1 other' in log
    assert f'teacher weights loaded from file://{teacher}' in log
    assert re.search(r'Epoch\(train\)\s*\[1\]\[2/2\]', log)


# checkpoint.py is loaded on its own (torch and mmengine only): importing kdzoo, with
# timm and mmpretrain, would take most of these tests' time in every process.
DOWNLOAD = textwrap.dedent(f'''
    import importlib.util, os, sys
    import torch.distributed as dist
    spec = importlib.util.spec_from_file_location(
        'checkpoint', {osp.join(REPO, 'kdzoo', 'models', 'checkpoint.py')!r})
    checkpoint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checkpoint)
    dist.init_process_group('gloo')
    print('cached at', checkpoint.download_checkpoint(sys.argv[1]), flush=True)
    # Leave as kdzoo.compat.finish_distributed does: gloo's own teardown aborts now and then
    # after all work is done (SIGABRT, 'terminate called without an active exception').
    dist.barrier()
    os._exit(0)
''')


def download_in_processes(tmp_path, url, torch_homes):
    """``download_checkpoint(url)`` in one process per entry of ``torch_homes`` (their
    TORCH_HOME), started as a launcher starts them, on one host; returns the finished
    processes' (returncode, output) by rank."""
    port = str(free_port())
    procs = []
    for rank, home in enumerate(torch_homes):
        env = launcher_env(tmp_path, RANK=str(rank), WORLD_SIZE=str(len(torch_homes)),
                           LOCAL_RANK=str(rank), MASTER_ADDR='127.0.0.1', MASTER_PORT=port,
                           TORCH_HOME=str(home))
        procs.append(subprocess.Popen([sys.executable, '-c', DOWNLOAD, url], env=env,
                                      cwd=str(tmp_path), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    results = []
    try:
        for proc in procs:
            # A process left waiting for a failed download would run into this limit.
            out, _ = proc.communicate(timeout=120)
            results.append((proc.returncode, out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def test_download_once_per_cache_with_uneven_groups(tmp_path):
    """Three processes, the third with its own cache (as a node of its own would have):
    ranks 0 and 2 download, rank 1 reads rank 0's copy."""
    teacher = save_tiny_teacher(tmp_path / 'teacher.pth')
    homes = [tmp_path / 'home_a', tmp_path / 'home_a', tmp_path / 'home_b']
    results = download_in_processes(tmp_path, f'file://{teacher}', homes)
    for rank, (code, out) in enumerate(results):
        assert code == 0, (rank, out[-3000:])
        assert f'cached at {homes[rank]}/hub/checkpoints/teacher.pth' in out
    for home in set(homes):
        assert os.listdir(home / 'hub' / 'checkpoints') == ['teacher.pth']
    assert 'by rank(s) [0, 2]; 1 other process(es) use that copy' in results[0][1]


def test_failed_download_stops_every_process(tmp_path):
    """The downloading process fails (no such file): it raises its error, and the process
    that waited for it stops too, naming the rank and the reason, instead of waiting."""
    missing = tmp_path / 'gone' / 'teacher.pth'
    results = download_in_processes(tmp_path, f'file://{missing}',
                                    [tmp_path / 'home'] * 2)
    (code0, out0), (code1, out1) = results
    assert code0 != 0 and code1 != 0
    assert f'cannot download the checkpoint file://{missing}' in out0
    # Of the downloader's kind (OSError), so code that handles it handles it everywhere.
    assert (f'OSError: checkpoint file://{missing}: the download failed on rank 0 (host '
            f'{socket.gethostname()}), so rank 1 stops too; OSError: cannot '
            'download') in out1
    assert not os.path.exists(tmp_path / 'home' / 'hub' / 'checkpoints' / 'teacher.pth')


def test_runner_finds_the_configured_model_wrapper():
    """mmengine's Runner looks model_wrapper_cfg's type up in its root registry."""
    from mmengine.config import Config
    from mmengine.registry import MODEL_WRAPPERS
    from kdzoo.engine import DistillerDDP
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'default_runtime.py'))
    assert MODEL_WRAPPERS.get(cfg.model_wrapper_cfg.type) is DistillerDDP
    assert MODEL_WRAPPERS.get('kdzoo.DistillerDDP') is DistillerDDP
