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

from conftest import REPO, write_tiny_distill_config


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
                                       per_class=2, batch_size=5, extra=extra)
    work_dir = tmp_path / 'work'
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env['PORT'] = str(free_port())
    env['OMP_NUM_THREADS'] = '1'
    env.pop('RANK', None)
    env.pop('WORLD_SIZE', None)
    env.pop('LOCAL_RANK', None)
    cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, '2',
           '--work-dir', str(work_dir), '--cfg-options', 'randomness.seed=0']
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]

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


def test_runner_finds_the_configured_model_wrapper():
    """mmengine's Runner looks model_wrapper_cfg's type up in its root registry."""
    from mmengine.config import Config
    from mmengine.registry import MODEL_WRAPPERS
    from kdzoo.engine import DistillerDDP
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'default_runtime.py'))
    assert MODEL_WRAPPERS.get(cfg.model_wrapper_cfg.type) is DistillerDDP
    assert MODEL_WRAPPERS.get('kdzoo.DistillerDDP') is DistillerDDP
