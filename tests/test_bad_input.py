"""Bad input is stopped through tools/train.py (and tools/test.py) with an error that names
it, before any training step: checkpoints that are cut short (resume, test, teacher) or of
another model (resume, load_from), a stage switch after the run, a schedule without steps,
an unknown --cfg-options key (also through tools/sweep.py), images that cannot be decoded,
an empty class folder; and a normal run logs no warning. Also: None removes kdzoo's keyed
default hooks, and a teacher checkpoint option wins over tools/test.py's fallback."""
import glob
import os
import os.path as osp
import re
import shutil

import pytest

from conftest import (config_path, load_tool, make_small_copy, save_tiny_teacher,
                      tiny_resnet, write_tiny_distill_config)
from kdzoo.registry import DATASETS


def logs(work_dir):
    """Every log that runs in ``work_dir`` wrote, joined."""
    text = ''
    for path in sorted(glob.glob(osp.join(work_dir, '*', '*.log'))):
        with open(path) as f:
            text += f.read()
    return text


def assert_no_step(work_dir):
    assert not glob.glob(osp.join(work_dir, '*.pth'))
    assert 'Epoch(train)' not in logs(work_dir)


@pytest.fixture(scope='module')
def trained(cifar_tiny, tmp_path_factory):
    """The tiny distiller trained for one epoch (2 iterations) by tools/train.py."""
    root = tmp_path_factory.mktemp('bad_input')
    teacher = save_tiny_teacher(root / 'teacher.pth')
    config = write_tiny_distill_config(root / 'tiny.py', cifar_tiny,
                                       teacher_checkpoint=teacher)
    work_dir = str(root / 'work')
    runner = load_tool('train').main([config, '--work-dir', work_dir,
                                      '--cfg-options', 'experiment_name=trained'])
    return dict(root=root, config=config, teacher=teacher, runner=runner,
                checkpoint=osp.join(work_dir, 'epoch_1.pth'), data=cifar_tiny)


def train(config, work_dir, *options):
    argv = [config, '--work-dir', str(work_dir)]
    if options and options[0] == '--resume':
        argv += list(options[:2])
        options = options[2:]
    return load_tool('train').main(argv + ['--cfg-options', *options])


def test_normal_run_logs_no_warning(trained, capfd):
    """mmengine's FileClient / HardDiskBackend deprecation pair was printed by its
    CheckpointHook at every run."""
    log = logs(osp.dirname(trained['checkpoint']))
    assert 'Epoch(train)' in log and ' - WARNING - ' not in log
    work_dir = trained['root'] / 'resumed'
    shutil.copytree(osp.dirname(trained['checkpoint']), work_dir)
    runner = train(trained['config'], work_dir, '--resume', osp.join(work_dir, 'epoch_1.pth'),
                   'train_cfg.max_epochs=2', 'experiment_name=quiet')
    assert runner.epoch == 2
    out, err = capfd.readouterr()
    for text in (out, err, logs(str(work_dir))):
        lines = [ln for ln in text.splitlines() if 'Build settings' not in ln]
        assert not [ln for ln in lines if re.search(r'warn|deprecat', ln, re.IGNORECASE)]


def test_resume_from_a_truncated_checkpoint_names_the_file(trained, tmp_path):
    cut = tmp_path / 'epoch_1.pth'
    with open(trained['checkpoint'], 'rb') as f:
        cut.write_bytes(f.read()[:4000])
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError) as err:
        train(trained['config'], work_dir, '--resume', str(cut), 'experiment_name=cut')
    assert f'{cut} is not a readable checkpoint' in str(err.value)
    assert 'torch checkpoint (.pth' in str(err.value)
    assert_no_step(str(work_dir))


def test_truncated_checkpoint_for_testing_or_as_teacher_names_the_file(trained, tmp_path):
    """tools/test.py and a teacher's checkpoint cut short: torch's "PytorchStreamReader
    failed reading zip archive" came without the file's path."""
    cut = tmp_path / 'cut.pth'
    with open(trained['checkpoint'], 'rb') as f:
        cut.write_bytes(f.read()[:4000])
    with pytest.raises(SystemExit) as err:
        load_tool('test').main([trained['config'], str(cut), '--work-dir',
                                str(tmp_path / 'test'), '--cfg-options', 'experiment_name=t'])
    assert f'{cut} is not a readable checkpoint' in str(err.value)
    cut_teacher = tmp_path / 'teacher_cut.pth'
    with open(trained['teacher'], 'rb') as f:
        cut_teacher.write_bytes(f.read()[:2000])
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError) as err:
        train(trained['config'], work_dir, f'model.teacher.checkpoint={cut_teacher}',
              'experiment_name=cut_teacher')
    assert f'{cut_teacher} is not a readable checkpoint' in str(err.value)
    assert_no_step(str(work_dir))


def test_resume_of_another_models_checkpoint_says_so(trained, tmp_path):
    """Before: mmengine's "loaded state dict has a different number of parameter groups"
    from the optimizer, without the file."""
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError) as err:
        train(trained['config'], work_dir, '--resume', trained['checkpoint'],
              'model.student.depth=1', 'experiment_name=other')
    msg = str(err.value)
    assert f"checkpoint {trained['checkpoint']} was saved by another model" in msg
    assert '0 student keys missing' in msg and 'unexpected' in msg
    assert "'student.blocks.1." in msg
    assert_no_step(str(work_dir))


def test_load_from_is_strict_about_the_student(trained, tmp_path):
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError) as err:
        train(trained['config'], work_dir, f"load_from={trained['teacher']}",
              'experiment_name=wrong')
    msg = str(err.value)
    assert f"checkpoint {trained['teacher']} does not fit the model of this config" in msg
    assert re.search(r'\d+ student keys missing \(e\.g\. \[\'student\.', msg)
    assert re.search(r'\d+ unexpected \(e\.g\. \[\'stem\.', msg)
    assert_no_step(str(work_dir))
    deeper = r"12 student keys missing \(e\.g\. \['student\.blocks\.2\."
    with pytest.raises(ValueError, match=deeper):
        train(trained['config'], tmp_path / 'deeper', f"load_from={trained['checkpoint']}",
              'model.student.depth=3', 'experiment_name=deeper')


def test_load_from_of_the_same_model_says_every_key_matched(trained, tmp_path):
    # The weights themselves: test_load_from_starts_from_the_files_weights in
    # tests/test_resume_exact.py.
    runner = train(trained['config'], tmp_path / 'work', f"load_from={trained['checkpoint']}",
                   'train_cfg.max_epochs=1', 'experiment_name=load')
    assert f"Load checkpoint from {trained['checkpoint']} (every student key matched)" in logs(
        str(tmp_path / 'work'))
    assert runner.iter == 2


def test_stage_switch_after_the_run_is_refused(trained, tmp_path):
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError, match=r'switch_epoch=10 is beyond the schedule of 1 '
                                         r'epochs'):
        train(trained['config'], work_dir,
              'default_hooks.distill_stage.type=DistillStageHook',
              'default_hooks.distill_stage.switch_epoch=10', 'experiment_name=switch')
    assert_no_step(str(work_dir))


@pytest.mark.parametrize('options, match', [
    (['train_cfg.max_epochs=0'], r'the schedule has no training step: max_epochs=0'),
    (['train_dataloader.batch_size=100', 'train_dataloader.drop_last=True'],
     r'\(.*: 20 images\) gives no iteration per epoch at batch size 100 with drop_last=True'),
])
def test_schedule_without_steps_is_refused(trained, tmp_path, options, match):
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError, match=match):
        # One name per case: mmengine keys its logger on the name and the second.
        train(trained['config'], work_dir, *options, f'experiment_name={tmp_path.name}')
    assert_no_step(str(work_dir))


UNREAD = ("--cfg-options max_epoch: no part of kdzoo or mmengine reads a top-level key "
          "'max_epoch', so this changes nothing; did you mean train_cfg.max_epochs?")


def test_unread_cfg_option_stops_the_run_with_the_closest_key(trained, tmp_path):
    """Before: one warning in the log, and the run trained its configured schedule."""
    work_dir = tmp_path / 'work'
    with pytest.raises(SystemExit) as err:
        train(trained['config'], work_dir, 'max_epoch=3', 'max_epochs=3',
              'experiment_name=typo')
    msg = str(err.value)
    assert msg.splitlines()[0] == UNREAD
    # A variable of the config file was used when the file was read; setting it later
    # changes nothing either.
    assert "--cfg-options max_epochs: 'max_epochs' is a variable of the config file" in msg
    assert '--allow-unread' in msg
    assert not work_dir.exists()  # stopped before the runner made anything
    with pytest.raises(SystemExit, match=re.escape(UNREAD)):
        load_tool('test').main([trained['config'], trained['checkpoint'], '--work-dir',
                                str(work_dir), '--cfg-options', 'max_epoch=3'])
    with pytest.raises(SystemExit, match=r'^sweep: tiny: ' + re.escape(UNREAD)):
        load_tool('sweep').main([trained['config'], '--seeds', '0', '--work-dir',
                                 str(work_dir), '--cfg-options', 'max_epoch=3'])
    assert not work_dir.exists()


def test_allow_unread_warns_and_goes_on(trained, tmp_path):
    work_dir = tmp_path / 'work'
    runner = load_tool('train').main([
        trained['config'], '--work-dir', str(work_dir), '--allow-unread', '--cfg-options',
        'max_epoch=3', 'experiment_name=typo_allowed'])
    log = logs(str(work_dir))
    assert log.count(UNREAD) == 1 and ' - WARNING - ' in log
    assert runner.epoch == 1  # still the configured single epoch
    metrics = load_tool('test').main([
        trained['config'], trained['checkpoint'], '--work-dir', str(tmp_path / 'test'),
        '--allow-unread', '--cfg-options', 'max_epoch=3', 'experiment_name=typo_test'])
    assert 'joint/top1' in metrics and UNREAD in logs(str(tmp_path / 'test'))
    from kdzoo.apis.sweep import plan_sweep
    lines = []
    plan = plan_sweep([trained['config']], [0], {'max_epoch': 3}, allow_unread=True,
                      log=lines.append)
    assert plan == [('tiny', trained['config'])] and lines == [f'tiny: warning: {UNREAD}']


@pytest.mark.parametrize('key, hook', [('progress_bar', 'ProgressBarHook'),
                                       ('data_check', 'DataCheckHook'),
                                       ('distill_stage', 'DistillStageHook')])
def test_none_removes_kdzoos_keyed_default_hooks(trained, tmp_path, key, hook):
    """configs/_base_/default_runtime.py documents None for its keyed hooks; mmengine
    accepts None only for its own and ended in a bare AssertionError."""
    config = write_tiny_distill_config(
        tmp_path / 'staged.py', trained['data'], teacher_checkpoint=trained['teacher'],
        extra="default_hooks = dict(logger=dict(interval=1), progress_bar=dict(disable=True),\n"
              "                     distill_stage=dict(type='DistillStageHook', "
              "switch_epoch=1))\n")
    runner = train(config, tmp_path / 'kept', f'experiment_name=kept_{key}')
    assert hook in [type(h).__name__ for h in runner.hooks]
    runner = train(config, tmp_path / 'work', f'default_hooks.{key}=None',
                   'default_hooks.timer=None', f'experiment_name=none_{key}')
    names = [type(h).__name__ for h in runner.hooks]
    assert hook not in names and 'IterTimerHook' not in names  # mmengine's own None too
    assert runner.iter == 2 and 'CheckpointHook' in ' '.join(names)


def test_teacher_checkpoint_option_wins_over_the_missing_file_fallback(trained, tmp_path,
                                                                      capsys):
    """README: --cfg-options model.teacher.checkpoint=PATH uses a local copy. test.py
    switched a teacher whose file is missing to random_init first, and the option's
    checkpoint then came with random_init ("exclude each other")."""
    config = write_tiny_distill_config(tmp_path / 'moved_teacher.py', trained['data'],
                                       teacher_checkpoint=str(tmp_path / 'gone.pth'))
    test = load_tool('test')
    metrics = test.main([config, trained['checkpoint'], '--work-dir', str(tmp_path / 'local'),
                         '--cfg-options', f"model.teacher.checkpoint={trained['teacher']}",
                         'experiment_name=local_teacher'])
    assert 'teacher/top1' in metrics  # the teacher has its weights: it is evaluated
    assert 'built without weights' not in capsys.readouterr().out
    # No option: the fallback, as before; the student is tested all the same.
    metrics = test.main([config, trained['checkpoint'], '--work-dir', str(tmp_path / 'none'),
                         '--cfg-options', 'experiment_name=no_teacher'])
    assert 'joint/top1' in metrics and 'teacher/top1' not in metrics
    out = capsys.readouterr().out
    assert 'gone.pth' in out and 'the teacher is built without weights' in out
    assert test.names_teacher_weights({'model.teacher.random_init': True})
    assert not test.names_teacher_weights({'model.teacher.model.depth': 8,
                                           'model.student.depth': 2})


def test_data_with_labels_beyond_the_model_is_refused(cifar_tiny, tmp_path):
    config = tmp_path / 'small_head.py'
    config.write_text(
        f"_base_ = [{config_path('resnet20_cifar10')!r}]\n"
        f"model = dict(student={tiny_resnet(num_classes=5)!r},\n"
        "             data_preprocessor=dict(num_classes=5))\n"
        "train_dataloader = dict(batch_size=10, num_workers=0, persistent_workers=False,\n"
        f"                        dataset=dict(data_root={cifar_tiny!r}, per_class=1))\n"
        "val_dataloader = val_cfg = val_evaluator = None\n"
        "train_cfg = dict(max_epochs=1)\n")
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError, match='has 10 classes but the model predicts 5'):
        train(str(config), work_dir, 'experiment_name=labels')
    assert_no_step(str(work_dir))


@pytest.fixture
def bad_data(cifar_tiny, tmp_path):
    """2 training images per class, plus in cat/ a JPEG cut short and a text file named
    .jpg."""
    root = make_small_copy(cifar_tiny, str(tmp_path / 'bad'), n_train=2, n_test=1)
    cat = osp.join(root, 'train', 'cat')
    good = osp.join(cat, sorted(os.listdir(cat))[0])
    with open(good, 'rb') as f:
        data = f.read()
    with open(osp.join(cat, 'cut.jpg'), 'wb') as f:
        f.write(data[:len(data) // 2])
    with open(osp.join(cat, 'notes.jpg'), 'w') as f:
        f.write('not an image')
    return root


def bad_config(trained, bad_data, tmp_path):
    return write_tiny_distill_config(tmp_path / 'bad.py', bad_data,
                                     teacher_checkpoint=trained['teacher'], per_class=None,
                                     batch_size=6)


def test_undecodable_image_is_named(trained, bad_data, tmp_path):
    with pytest.raises(ValueError) as err:
        train(bad_config(trained, bad_data, tmp_path), tmp_path / 'work',
              'experiment_name=bad')
    msg = str(err.value)
    assert re.search(r'image \S+/train/cat/(cut|notes)\.jpg cannot be decoded \(', msg)
    assert "bad_image='skip'" in msg and 'tools/check_data.py' in msg


def test_skip_policy_trains_past_undecodable_images(trained, bad_data, tmp_path):
    runner = train(bad_config(trained, bad_data, tmp_path), tmp_path / 'work',
                   'train_dataloader.dataset.bad_image=skip', 'train_cfg.max_epochs=2',
                   'experiment_name=skip')
    assert (runner.epoch, runner.iter) == (2, 8)  # 22 images, batches of 6: 4 per epoch
    log = logs(str(tmp_path / 'work'))
    for name in ('cut.jpg', 'notes.jpg'):  # logged once, not once per epoch
        path = osp.join(bad_data, 'train', 'cat', name)
        assert log.count(f'image {path} cannot be decoded') == 1


def test_skip_takes_the_next_image_and_keeps_other_errors(bad_data):
    dataset = DATASETS.build(dict(
        type='ImageFolderSubset', data_root=bad_data, data_prefix='train', bad_image='skip',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    cut = paths.index(osp.join(bad_data, 'train', 'cat', 'cut.jpg'))
    assert paths[cut + 1].endswith('notes.jpg')  # also bad: the one after is taken
    assert dataset[cut]['data_samples'].img_path == paths[cut + 2]
    # A pipeline error on an image that decodes is not a bad image: raised as it is.
    def bug(results):
        raise KeyError('a bug in a transform')

    broken = DATASETS.build(dict(
        type='ImageFolderSubset', data_root=bad_data, data_prefix='train', bad_image='skip',
        pipeline=[dict(type='LoadImageFromFile'), bug]))
    with pytest.raises(KeyError, match='a bug in a transform'):
        broken[0]
    with pytest.raises(ValueError, match=r"bad_image must be one of \('error', 'skip'\), got "
                                         r"'ignore'"):
        DATASETS.build(dict(type='ImageFolderSubset', data_root=bad_data,
                            data_prefix='train', bad_image='ignore'))


def test_empty_class_folder_is_named(trained, cifar_tiny, tmp_path):
    data = make_small_copy(cifar_tiny, str(tmp_path / 'data'), n_train=2, n_test=1)
    empty = osp.join(data, 'train', 'zebra')
    os.makedirs(empty)
    work_dir = tmp_path / 'work'
    config = write_tiny_distill_config(tmp_path / 'empty.py', data,
                                       teacher_checkpoint=trained['teacher'], per_class=None)
    with pytest.raises(ValueError, match=f'class folders without an image .*: {empty}; '):
        train(config, work_dir, 'experiment_name=empty_class')
    assert_no_step(str(work_dir))
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('empty_class_warn')
    with _captured(logger) as records:
        dataset = DATASETS.build(dict(type='ImageFolderSubset', data_root=data,
                                      data_prefix='train', empty_class='warn'))
    assert len(dataset.metainfo['classes']) == 11
    assert any('class folders without an image' in r and empty in r for r in records)


class _captured:
    """The messages the current mmengine logger emits inside the block."""

    def __init__(self, logger):
        self.logger = logger

    def __enter__(self):
        import logging
        self.records = []
        self.handler = logging.Handler()
        self.handler.emit = lambda record: self.records.append(record.getMessage())
        self.logger.addHandler(self.handler)
        return self.records

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
