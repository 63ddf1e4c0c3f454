"""kdzoo's Runner stops its loaders' persistent worker processes when train(), val() or
test() returns, instead of leaving them to the garbage collector of a later run."""
import multiprocessing

from conftest import build_runner, cifar_cfg


def test_no_loader_worker_outlives_train_and_test(cifar_mini, tmp_path):
    cfg = cifar_cfg('deit_micro_cifar10', cifar_mini, tmp_path, batch_size=8, per_class=2,
                    max_epochs=2)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers, cfg[key].persistent_workers = 1, True
    cfg.train_cfg.val_interval = 1
    before = set(multiprocessing.active_children())
    runner = build_runner(cfg)
    runner.train()
    for loop in (runner.train_loop, runner.val_loop):
        assert loop.dataloader._iterator is None
    assert set(multiprocessing.active_children()) <= before
    metrics = runner.test()
    assert runner.test_loop.dataloader._iterator is None
    assert set(multiprocessing.active_children()) <= before
    assert 'joint/top1' in metrics
    # a loader that was stopped starts new workers when it is used again
    assert 'joint/top1' in runner.val()
    assert set(multiprocessing.active_children()) <= before
