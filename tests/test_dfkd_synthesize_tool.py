"""tools/synthesize.py and the shard writer: resuming after an interruption, splitting the
shards between ranks, atomic writes, the class-folder layout and early errors."""
import glob
import json
import os
import os.path as osp
import textwrap

import pytest
import torch

from conftest import CIFAR_CLASSES, CONFIGS, load_tool, tiny_resnet
from kdzoo.registry import DATASETS, MODELS
from kdzoo.synthesis import (ShardWriter, balanced_labels, merge_manifests, num_shards,
                             run_shards)
from kdzoo.synthesis import shards as shards_module

torch.set_num_threads(1)
MICRO = osp.join(CONFIGS, 'dearkd', 'df_dearkd_micro_cifar10.py')
STAGES = [dict(size=8, iterations=1, jitter=1), dict(size=16, iterations=1, jitter=1)]


@pytest.fixture(scope='module')
def teacher_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = MODELS.build(tiny_resnet())
    path = tmp_path_factory.mktemp('teacher') / 'tiny_resnet.pth'
    torch.save(net.state_dict(), path)
    return str(path)


def write_config(tmp_path, checkpoint, stages=STAGES, num_images=12, seed=0):
    path = tmp_path / 'synth.py'
    path.write_text(textwrap.dedent(f'''
        _base_ = [{MICRO!r}]
        model = dict(teacher=dict(model=dict(depth=8, widths=(8, 16, 32)),
                                  checkpoint={checkpoint!r}))
        synthesis = dict(num_images={num_images}, batch_size=4, per_class_in_batch=2,
                         seed={seed}, synthesizer=dict(stages={stages!r}))
    '''))
    return str(path)


def pngs(out):
    return sorted(osp.relpath(p, out) for p in glob.glob(osp.join(out, '*', '*.png')))


def test_resume_after_interruptions_gives_every_image_once(tmp_path, teacher_checkpoint,
                                                           monkeypatch):
    tool = load_tool('synthesize')
    cfg = write_config(tmp_path, teacher_checkpoint)
    out = str(tmp_path / 'synth')
    args = [cfg, '--out', out, '--work-dir', str(tmp_path / 'work')]

    # 1. a time-limited run: one shard, then stop
    assert tool.main(args + ['--max-shards', '1']) is None
    assert osp.isfile(osp.join(out, 'shard_00000.json'))
    assert not osp.exists(osp.join(out, 'shard_00001.json'))
    assert not osp.exists(osp.join(out, 'manifest.json'))
    first = os.stat(osp.join(out, 'shard_00000.json')).st_mtime_ns

    # 2. a crash after shard 2's images are in place, before its manifest
    real = shards_module._atomic_json

    def crash(obj, path, tmp_dir):
        if path.endswith('shard_00002.json'):
            raise RuntimeError('simulated crash')
        return real(obj, path, tmp_dir)

    monkeypatch.setattr(shards_module, '_atomic_json', crash)
    with pytest.raises(RuntimeError, match='simulated crash'):
        tool.main(args)
    monkeypatch.undo()
    assert [p for p in pngs(out) if '/00002_' in p]  # images without a manifest
    assert not osp.exists(osp.join(out, 'shard_00002.json'))
    stale = osp.join(out, 'truck', '00002_099.png')  # left by some earlier attempt
    with open(stale, 'wb') as f:
        f.write(b'not an image')

    # 3. the restart completes the set
    manifest = tool.main(args)
    assert os.stat(osp.join(out, 'shard_00000.json')).st_mtime_ns == first  # not redone
    with open(osp.join(str(tmp_path / 'work'), 'synthesize.log')) as f:
        log = f.read()
    # one log for all runs; the throughput counts the images each run made, not those
    # found done (the crashed run made shard 1; shard 2 was made again)
    assert 'wrote shards [0]: 4 images in' in log
    assert 'wrote shards [2]: 4 images in' in log and 'images/s on cpu)' in log
    assert not osp.exists(stale)
    assert manifest['num_images'] == 12 and manifest['num_shards'] == 3
    files = [e['file'] for e in manifest['images']]
    assert sorted(e['index'] for e in manifest['images']) == list(range(12))
    assert len(set(files)) == 12 and sorted(files) == pngs(out)
    labels = balanced_labels(12, 10, 2).tolist()
    for e in manifest['images']:
        assert e['label'] == labels[e['index']]
        assert e['file'].split('/')[0] == CIFAR_CLASSES[e['label']]
        assert e['ce'] >= 0 and 'total' in e
    with open(osp.join(out, 'manifest.json')) as f:
        assert json.load(f)['images'] == manifest['images']
    assert manifest['checkpoint'] == teacher_checkpoint and manifest['seed'] == 0
    assert manifest['settings']['synthesizer']['alpha_bn'] == 5e-2
    assert osp.isfile(osp.join(out, 'grid.png'))
    # atomic writes leave nothing temporary behind
    assert not osp.exists(out + '.partial')
    leftovers = [p for p in glob.glob(osp.join(out, '**', '*'), recursive=True)
                 if p.endswith('.tmp') or '.tmp.' in p]
    assert leftovers == []

    # 4. other settings in the same folder are refused, not mixed in
    other = write_config(tmp_path, teacher_checkpoint, seed=1)
    with pytest.raises(RuntimeError, match='other settings'):
        tool.main([other, '--out', out, '--work-dir', str(tmp_path / 'work')])


def test_two_ranks_write_disjoint_shards_that_cover_everything(tmp_path,
                                                              teacher_checkpoint):
    teacher = MODELS.build(dict(type='Teacher', model=tiny_resnet(),
                                checkpoint=teacher_checkpoint))
    synthesizer = MODELS.build(dict(type='DeepInversionSynthesizer', stages=STAGES,
                                    mean=[125.3, 123.0, 113.9], std=[51.6, 50.8, 51.3]))
    out = str(tmp_path / 'synth')
    writer = ShardWriter(out, CIFAR_CLASSES, dict(test='two ranks'))
    labels = balanced_labels(6, 10)  # classes 6-9 stay empty
    total = num_shards(6, 2)
    rank0 = run_shards(synthesizer, teacher, writer, labels, 2, rank=0, world_size=2)
    rank1 = run_shards(synthesizer, teacher, writer, labels, 2, rank=1, world_size=2)
    assert rank0 == [0, 2] and rank1 == [1]
    assert run_shards(synthesizer, teacher, writer, labels, 2, rank=0, world_size=2) == []
    manifest = merge_manifests(writer, total, dict(teacher='tiny'))
    assert sorted(e['index'] for e in manifest['images']) == list(range(6))

    # the folder is a class-folder dataset whose labels are the synthesis targets,
    # although some class folders are still empty (allowed explicitly)
    dataset = DATASETS.build(dict(type='ImageFolderSubset', data_root=out, data_prefix='',
                                  pipeline=[], empty_class='warn'))
    assert len(dataset) == 6 and tuple(dataset.metainfo['classes']) == CIFAR_CLASSES
    by_file = {e['file']: e['label'] for e in manifest['images']}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert int(info['gt_label']) == by_file[osp.relpath(info['img_path'], out)]


def test_merge_refuses_an_incomplete_set(tmp_path):
    writer = ShardWriter(str(tmp_path / 'synth'), CIFAR_CLASSES, {})
    writer.prepare()
    with pytest.raises(RuntimeError, match='not finished'):
        merge_manifests(writer, 2, {})
    with pytest.raises(ValueError, match='sorted'):
        ShardWriter(str(tmp_path / 'x'), ['b', 'a'], {})


@pytest.mark.parametrize('case,match', [
    ('missing_checkpoint', 'checkpoint'),
    ('zero_images', 'num_images'),
    ('bad_stages', 'stages'),
])
def test_errors_come_before_any_work(tmp_path, teacher_checkpoint, case, match):
    tool = load_tool('synthesize')
    checkpoint = str(tmp_path / 'absent.pth') if case == 'missing_checkpoint' \
        else teacher_checkpoint
    stages = [dict(size=16, iterations=1), dict(size=8, iterations=1)] \
        if case == 'bad_stages' else STAGES
    cfg = write_config(tmp_path, checkpoint, stages=stages,
                       num_images=0 if case == 'zero_images' else 12)
    out = tmp_path / 'synth'
    with pytest.raises(SystemExit, match=match):
        tool.main([cfg, '--out', str(out), '--work-dir', str(tmp_path / 'work')])
    assert not out.exists() and not (tmp_path / 'work').exists()


class ConvNoBatchNorm(torch.nn.Module):
    """A 10-class CNN without BatchNorm: DeepInversion has no statistics to match."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.num_classes = num_classes
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_synthesis_that_fails_before_an_image_leaves_nothing_behind(tmp_path):
    MODELS.register_module(name='ConvNoBatchNorm', module=ConvNoBatchNorm, force=True)
    try:
        checkpoint = tmp_path / 'nobn.pth'
        torch.save(ConvNoBatchNorm().state_dict(), checkpoint)
        cfg = write_config(tmp_path, str(checkpoint))
        with open(cfg, 'a') as f:
            f.write("model['teacher']['model'] = dict(_delete_=True, type='ConvNoBatchNorm')\n")
        out = tmp_path / 'synth'
        with pytest.raises(ValueError, match='BatchNorm'):
            load_tool('synthesize').main([cfg, '--out', str(out), '--work-dir',
                                          str(tmp_path / 'work')])
    finally:
        MODELS._module_dict.pop('ConvNoBatchNorm', None)
    assert not out.exists() and not (tmp_path / 'synth.partial').exists()


def test_the_teacher_runs_at_the_runs_precision(tmp_path, teacher_checkpoint, monkeypatch):
    """The synthesizer's bf16 follows --amp / --fp32 / env_cfg.precision when the config
    leaves it None, and the set records the resolved value (a set is resumed only at the
    precision it was started with)."""
    import kdzoo.numerics as numerics
    tool = load_tool('synthesize')
    monkeypatch.setattr(numerics, 'cpu_has_native_bf16', lambda: True)
    seen = {}
    for flags, want in ((['--fp32'], False), (['--amp'], True), ([], True)):
        cfg = write_config(tmp_path, teacher_checkpoint, num_images=4)
        out = str(tmp_path / f'synth_{want}_{len(flags)}')
        tool.main([cfg, '--out', out, '--work-dir', str(tmp_path / 'work'), *flags])
        with open(osp.join(out, 'manifest.json')) as f:
            settings = json.load(f)['settings']
        seen[tuple(flags)] = settings['synthesizer']['bf16']
        assert settings['synthesizer']['bf16'] is want, flags
    with pytest.raises(SystemExit):  # argparse: the two flags exclude each other
        tool.parse_args([write_config(tmp_path, teacher_checkpoint), '--amp', '--fp32'])
