"""TensorBoard logging is one config line: event files next to mmengine's scalar log."""
import glob
import os.path as osp

import pytest

from conftest import build_runner, cifar_cfg

TENSORBOARD = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]


def test_one_config_line_writes_tensorboard_events(cifar_tiny, tmp_path):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    cfg = cifar_cfg('deit_micro_cifar10', cifar_tiny, tmp_path, per_class=2, batch_size=10,
                    **{'visualizer.vis_backends': TENSORBOARD,
                       'model.student': dict(embed_dim=32, depth=1, num_heads=2)})
    runner = build_runner(cfg)
    runner.train()
    events = glob.glob(osp.join(runner.log_dir, 'vis_data', 'events.out.tfevents.*'))
    assert len(events) == 1
    scalars = EventAccumulator(events[0])
    scalars.Reload()
    assert {'loss', 'loss_cls', 'lr'} <= set(scalars.Tags()['scalars'])
    assert len(scalars.Scalars('loss')) == len(runner.train_dataloader)
    assert osp.isfile(osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
