"""tools/train.py: train, then resume from the work dir's latest checkpoint, with torch's
safe (weights_only) checkpoint loading throughout; tools/test.py on the result."""
import glob
import json
import os
import os.path as osp
import pickle
import re

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from conftest import load_tool, save_tiny_teacher, tiny_resnet, write_tiny_distill_config
from kdzoo.registry import MODELS


def read_log(runner):
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


@pytest.fixture(scope='module')
def resumed(cifar_tiny, tmp_path_factory):
    """2 epochs (2 iterations each) with tools/train.py, then --resume to 3 epochs."""
    root = tmp_path_factory.mktemp('resume')
    teacher_ckpt = save_tiny_teacher(root / 'teacher.pth')
    config = write_tiny_distill_config(root / 'tiny_distill.py', cifar_tiny,
                                       teacher_checkpoint=teacher_ckpt, max_epochs=2)
    work_dir = str(root / 'work')
    train = load_tool('train')
    first = train.main([config, '--work-dir', work_dir,
                        '--cfg-options', 'experiment_name=first'])
    first_log = read_log(first)
    second = train.main([config, '--work-dir', work_dir, '--resume',
                         '--cfg-options', 'train_cfg.max_epochs=3', 'experiment_name=second'])
    return dict(root=root, config=config, work_dir=work_dir, teacher_ckpt=teacher_ckpt,
                first=first, second=second, first_log=first_log,
                second_log=read_log(second))


def test_first_run_trains_two_epochs(resumed):
    first = resumed['first']
    assert (first.epoch, first.iter) == (2, 4)
    work_dir = resumed['work_dir']
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        assert osp.isfile(osp.join(work_dir, name)), name
    assert 'resumed' not in resumed['first_log']


def test_resume_continues_from_epoch_two(resumed):
    second, log = resumed['second'], resumed['second_log']
    assert (second.epoch, second.iter) == (3, 6)
    assert 'Auto resumed from the latest checkpoint' in log
    assert osp.join(resumed['work_dir'], 'epoch_2.pth') in log
    assert re.search(r'resumed epoch: 2, iter: 4', log)
    trained = re.findall(r'Epoch\(train\)\s*\[(\d+)\]', log)
    assert trained and set(trained) == {'3'}
    assert osp.isfile(osp.join(resumed['work_dir'], 'epoch_3.pth'))
    with open(osp.join(resumed['work_dir'], 'last_checkpoint')) as f:
        assert f.read().strip().endswith('epoch_3.pth')


def test_resume_continues_the_optimizer_and_keeps_the_teacher_out(resumed):
    """The third epoch changed the student weights of epoch 2 and Adam's steps went on;
    the teacher is in no checkpoint and in no optimizer, and comes back from its own file
    on resume. (That the resumed model holds epoch 2's exact weights, optimizer and
    scheduler state: tests/test_resume_exact.py.)"""
    e2 = torch.load(osp.join(resumed['work_dir'], 'epoch_2.pth'), weights_only=True)
    e3 = torch.load(osp.join(resumed['work_dir'], 'epoch_3.pth'), weights_only=True)
    s2, s3 = e2['state_dict'], e3['state_dict']
    assert s2.keys() == s3.keys()
    assert not [k for k in s2 if k.startswith('teacher.')]
    assert not torch.equal(s2['student.head.weight'], s3['student.head.weight'])
    # Adam's step counter went on from epoch 2's 4 steps, for the student's parameters.
    steps = [s['step'] for s in e3['optimizer']['state'].values()]
    assert steps and all(float(s) == 6 for s in steps)
    model = resumed['second'].model
    trainable = [p for p in model.parameters() if p.requires_grad]
    grouped = [p for g in resumed['second'].optim_wrapper.optimizer.param_groups
               for p in g['params']]
    assert len(grouped) == len(trainable) == len(s3) - sum(
        1 for k in s3 if 'running_' in k or 'num_batches' in k)
    # The resumed teacher holds its file's weights.
    original = torch.load(resumed['teacher_ckpt'], weights_only=True)
    teacher = model.teacher.model.state_dict()
    for key, value in original.items():
        assert torch.equal(teacher[key], value), key
    assert 'requires_grad=False' not in resumed['first_log']


def test_checkpoints_load_with_weights_only(resumed):
    path = osp.join(resumed['work_dir'], 'epoch_2.pth')
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 4
    assert {'state_dict', 'optimizer', 'message_hub', 'param_schedulers'} <= set(ckpt)
    # torch's default is weights_only=True: a plain load works too, by the same rules.
    plain = torch.load(path, map_location='cpu')
    assert plain['meta']['epoch'] == 2
    hub = ckpt['message_hub']['log_scalars']
    assert isinstance(hub['train/loss'], HistoryBuffer)


class Payload:
    """An arbitrary user class: not on the weights_only allow list."""

    def __init__(self):
        self.value = 1


class RunsCommand:
    """Unpickling calls os.system: the classic malicious checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class GetattrTrick:
    """Unpickling calls getattr(HistoryBuffer, '__class__'), which is not a statistic."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__class__')


class GetattrStatistic:
    """What mmengine checkpoints really contain: getattr(HistoryBuffer, 'mean')."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, 'mean')


@pytest.mark.parametrize('make', [
    lambda tmp: {'fn': os.system},
    lambda tmp: {'obj': Payload()},
    lambda tmp: {'state_dict': {'w': torch.zeros(2)}, 'evil': RunsCommand(tmp / 'pwned')},
], ids=['os.system-reference', 'custom-class', 'reduce-os.system'])
def test_disallowed_globals_are_refused(make, tmp_path):
    import kdzoo  # noqa: F401  (its safe globals are registered; still refused)
    path = tmp_path / 'bad.pth'
    torch.save(make(tmp_path), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # the default is weights_only=True
    assert not (tmp_path / 'pwned').exists()


def test_getattr_allowed_only_for_history_buffer_statistics(tmp_path):
    ok = tmp_path / 'ok.pth'
    torch.save({'fn': GetattrStatistic()}, ok)
    assert torch.load(ok, weights_only=True)['fn'] is HistoryBuffer.mean
    bad = tmp_path / 'bad.pth'
    torch.save({'fn': GetattrTrick()}, bad)
    with pytest.raises((RuntimeError, pickle.UnpicklingError), match='getattr|__class__'):
        torch.load(bad, weights_only=True)


def test_teacher_refuses_malicious_checkpoint(tmp_path):
    path = tmp_path / 'teacher.pth'
    state = MODELS.build(tiny_resnet()).state_dict()
    state['evil'] = RunsCommand(tmp_path / 'pwned')
    torch.save(state, path)
    with pytest.raises(pickle.UnpicklingError):
        MODELS.build(dict(type='Teacher', model=tiny_resnet(), checkpoint=str(path)))
    assert not (tmp_path / 'pwned').exists()


HEAD_ROWS = {'joint': 'joint classifier', 'cls': 'class head', 'dist': 'distillation head'}


def test_tools_test_reports_all_heads(resumed, cifar_tiny, tmp_path, capsys):
    # The teacher's own file is not needed to test a distilled checkpoint.
    config = write_tiny_distill_config(tmp_path / 'tiny_distill_test.py', cifar_tiny,
                                       teacher_checkpoint=str(tmp_path / 'gone.pth'))
    test = load_tool('test')
    out = str(tmp_path / 'metrics.json')
    ckpt = osp.join(resumed['work_dir'], 'epoch_3.pth')
    capsys.readouterr()
    metrics = test.main([config, ckpt, '--work-dir', str(tmp_path / 'test_work'),
                         '--out', out, '--cfg-options', 'experiment_name=tools_test'])
    printed = capsys.readouterr().out
    for head in HEAD_ROWS:
        for k in (1, 5):
            value = metrics[f'{head}/top{k}']
            assert 0.0 <= value <= 100.0
            # 100 test images: every accuracy is a whole percentage.
            assert value == pytest.approx(round(value), abs=1e-4)
        assert metrics[f'{head}/top5'] >= metrics[f'{head}/top1']
    rows = {line.split('  ')[0]: line for line in printed.splitlines()}
    for head, name in HEAD_ROWS.items():
        cells = rows[name][len(name):].split()
        assert float(cells[0]) == pytest.approx(metrics[f'{head}/top1'], abs=0.005)
        assert float(cells[1]) == pytest.approx(metrics[f'{head}/top5'], abs=0.005)
    with open(out) as f:
        assert json.load(f) == pytest.approx(metrics)


def test_tools_test_matches_model_predictions(resumed, cifar_tiny, tmp_path):
    """joint/cls/dist top1 from tools/test.py equal those computed here from the model."""
    from mmengine.config import Config
    from mmpretrain.structures import DataSample
    config = write_tiny_distill_config(tmp_path / 'tiny_distill_test2.py', cifar_tiny,
                                       teacher_checkpoint=None)
    test = load_tool('test')
    ckpt = osp.join(resumed['work_dir'], 'epoch_3.pth')
    metrics = test.main([config, ckpt, '--work-dir', str(tmp_path / 'w'),
                         '--cfg-options', 'experiment_name=tools_test2'])
    cfg = Config.fromfile(config)
    model_cfg = cfg.model
    model_cfg.data_preprocessor = cfg.data_preprocessor
    model = MODELS.build(model_cfg)
    model.load_state_dict(torch.load(ckpt, weights_only=True)['state_dict'])
    model.eval()
    from kdzoo.registry import DATASETS
    ds = DATASETS.build(cfg.test_dataloader.dataset)
    hits = {'joint': 0, 'cls': 0, 'dist': 0}
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            data = model.data_preprocessor(dict(inputs=[item['inputs']],
                                                data_samples=[item['data_samples']]))
            cls, dist = model.student.forward_heads(data['inputs'])
            label = int(item['data_samples'].gt_label)
            hits['cls'] += int(cls.argmax() == label)
            hits['dist'] += int(dist.argmax() == label)
            hits['joint'] += int((cls + dist).argmax() == label)
    for head, n in hits.items():
        assert metrics[f'{head}/top1'] == pytest.approx(100.0 * n / len(ds)), head
    assert len(ds) == 100
    assert isinstance(ds[0]['data_samples'], DataSample)
    assert glob.glob(osp.join(str(tmp_path / 'w'), '*', '*.log'))


def test_non_finite_loss_stops_before_the_step_and_names_the_term(cifar_tiny, tmp_path):
    """AdamW at lr 1e10: the first step is finite, the second loss is not. The run stops
    there with the term, the iteration and the last finite values, and every checkpoint
    it saved holds finite weights."""
    config = write_tiny_distill_config(tmp_path / 'tiny_nan.py', cifar_tiny, per_class=1,
                                       max_epochs=3)
    work_dir = tmp_path / 'work'
    with pytest.raises(FloatingPointError) as err:
        load_tool('train').main([config, '--work-dir', str(work_dir), '--cfg-options',
                                 'optim_wrapper.optimizer.lr=1e10',
                                 'experiment_name=nan'])
    msg = str(err.value)
    assert 'non-finite loss at iteration 2' in msg
    assert 'loss_cls = nan' in msg or 'loss_cls = inf' in msg
    assert 'the last finite ones, at iteration 1: loss' in msg
    saved = sorted(os.listdir(work_dir))
    assert 'epoch_1.pth' in saved and 'epoch_2.pth' not in saved
    ckpt = torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
               if v.is_floating_point())


def test_tools_test_refuses_another_models_checkpoint(resumed, cifar_tiny, tmp_path):
    """The teacher's checkpoint given with the student's config: before, exit 0 and 10%
    top-1 of a random network; now a clear error before any testing."""
    config = write_tiny_distill_config(tmp_path / 'tiny_wrong.py', cifar_tiny,
                                       teacher_checkpoint=resumed['teacher_ckpt'])
    with pytest.raises(SystemExit) as err:
        load_tool('test').main([config, resumed['teacher_ckpt'], '--work-dir',
                                str(tmp_path / 'w'), '--cfg-options', 'experiment_name=wrong'])
    msg = str(err.value)
    assert resumed['teacher_ckpt'] in msg and 'does not fit the model of this config' in msg
    assert "'student." in msg and 'unexpected' in msg


def test_truncated_checkpoints_are_named(resumed, tmp_path):
    from kdzoo.models.checkpoint import load_state_dict_file, load_strictly
    good = osp.join(resumed['work_dir'], 'epoch_2.pth')
    cut = tmp_path / 'cut.pth'
    with open(good, 'rb') as f:
        cut.write_bytes(f.read()[:5000])
    text, short = tmp_path / 'notes.pth', tmp_path / 'hello.pth'
    text.write_text('not a checkpoint')
    short.write_text('hello')
    for path in (cut, text, short):
        with pytest.raises(ValueError, match=f'{path} is not a readable checkpoint'):
            load_state_dict_file(str(path))
        with pytest.raises(ValueError, match='torch checkpoint'):
            load_strictly(resumed['second'].model, str(path))


def test_runs_started_in_the_same_second_get_their_own_logs(cifar_tiny, tmp_path,
                                                           monkeypatch):
    import time
    from conftest import cifar_cfg, build_runner
    now = time.time()
    monkeypatch.setattr(time, 'time', lambda: now)  # both runners start in one second
    runners = [build_runner(cifar_cfg('resnet20_cifar10', cifar_tiny, tmp_path / 'work',
                                      model=dict(student=tiny_resnet())))
               for _ in range(3)]
    log_dirs = [r.log_dir for r in runners]
    assert len(set(log_dirs)) == 3
    assert log_dirs[1] == log_dirs[0] + '_1' and log_dirs[2] == log_dirs[0] + '_2'
    assert all(osp.basename(r.log_dir) == r.timestamp for r in runners)


def test_resume_without_a_checkpoint_trains_from_scratch(cifar_tiny, tmp_path):
    """mmengine's convention: an automatic resume with nothing to resume starts fresh (so
    re-runs and sweeps work), said in one line instead of "Auto resumed from the latest
    checkpoint None"."""
    config = write_tiny_distill_config(tmp_path / 'tiny_fresh.py', cifar_tiny, per_class=1)
    work_dir = tmp_path / 'work'
    runner = load_tool('train').main([config, '--work-dir', str(work_dir), '--resume',
                                      '--cfg-options', 'experiment_name=fresh'])
    log = read_log(runner)
    line = f'no checkpoint in {work_dir} to resume; training from scratch'
    assert re.search(rf' - INFO - {re.escape(line)}\n', log)
    assert log.count(line) == 1
    assert 'Auto resumed' not in log and 'checkpoint None' not in log
    assert (runner.epoch, runner.iter) == (1, 1)
    assert osp.isfile(work_dir / 'epoch_1.pth')


def test_resume_with_a_dangling_pointer_says_so(cifar_tiny, tmp_path):
    """last_checkpoint names a file that is gone and nothing else is there: an error that
    names both and the ways out, before any step."""
    config = write_tiny_distill_config(tmp_path / 'tiny_dangling.py', cifar_tiny, per_class=1)
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_3.pth'))
    with pytest.raises(FileNotFoundError) as err:
        load_tool('train').main([config, '--work-dir', str(work_dir), '--resume',
                                 '--cfg-options', 'experiment_name=dangling'])
    assert str(err.value) == (
        f'{work_dir}/last_checkpoint names {work_dir}/epoch_3.pth, which is missing or '
        'incomplete, and the work dir holds no other complete checkpoint; give --resume a '
        'checkpoint file, or delete last_checkpoint to train from scratch')
    assert not glob.glob(str(work_dir / '*.pth'))


LAYOUTS = ('timm', 'mmpretrain', 'kdzoo')


@pytest.fixture(scope='module')
def exported(resumed):
    """The student of epoch_2.pth written by tools/export.py's function in each layout."""
    from kdzoo.apis import export_student
    ckpt = osp.join(resumed['work_dir'], 'epoch_2.pth')
    files = {to: str(resumed['root'] / f'student_{to}.pth') for to in LAYOUTS}
    for to, out in files.items():
        export_student(resumed['config'], ckpt, to, out)
    return files


@pytest.mark.parametrize('how', ['resume', 'load_from'])
@pytest.mark.parametrize('to', LAYOUTS)
def test_exported_student_is_named_with_the_way_to_use_it(resumed, exported, tmp_path, to,
                                                          how):
    """Before: "was saved by another model" (resume) or "does not fit the model of this
    config" (load_from), about a file that is the right student in another form."""
    path = exported[to]
    options = [f'experiment_name=exported_{to}_{how}']
    if how == 'resume':
        args = ['--resume', path, '--cfg-options'] + options
    else:
        args = ['--cfg-options', f'load_from={path}'] + options
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError) as err:
        load_tool('train').main([resumed['config'], '--work-dir', str(work_dir)] + args)
    msg = str(err.value)
    assert msg.startswith(f'checkpoint {path} is an exported student (')
    assert f'--to {to}' in msg and 'not a training checkpoint: ' in msg
    assert 'another model' not in msg and 'does not fit' not in msg
    if to == 'mmpretrain':
        # A kdzoo student cannot take mmpretrain's keys: the way is another export.
        assert 'it loads with mmpretrain' in msg
        assert ('export the training checkpoint again with --to kdzoo --out NEW_FILE and use '
                '--cfg-options model.student.pretrained=NEW_FILE') in msg
    else:
        assert f'use it with --cfg-options model.student.pretrained={path}' in msg
        assert (f"kdzoo.get_model('{path}') for inference" in msg) == (to == 'kdzoo')
    assert not glob.glob(str(work_dir / '*.pth'))


@pytest.mark.parametrize('to', ['timm', 'kdzoo'])
def test_the_named_way_starts_from_the_exported_student(resumed, exported, tmp_path, to):
    """model.student.pretrained=FILE, as the error says: one step at learning rate 0
    keeps the exported weights, so the run started from them."""
    work_dir = tmp_path / 'work'
    load_tool('train').main([resumed['config'], '--work-dir', str(work_dir), '--cfg-options',
                             f'model.student.pretrained={exported[to]}',
                             'optim_wrapper.optimizer.lr=0.0', 'train_cfg.max_epochs=1',
                             'train_dataloader.dataset.per_class=1',
                             f'experiment_name=pretrained_{to}'])
    saved = torch.load(work_dir / 'epoch_1.pth', weights_only=True)['state_dict']
    student = {k[len('student.'):]: v for k, v in saved.items() if k.startswith('student.')}
    file = torch.load(exported[to], weights_only=True)
    file = file['state_dict'] if to == 'kdzoo' else file
    assert student.keys() == file.keys()
    for key, value in file.items():
        assert torch.equal(student[key], value), key
