"""What a new user meets on the command line: the ``kdzoo`` command's version, config table
and help texts, ``--cfg-options`` with dict values, ``kdzoo::`` bases, and the data
folder that the data tool writes and the configs read."""
import argparse
import os
import os.path as osp
import textwrap

import pytest
from mmengine.config import Config

import kdzoo
from kdzoo import cli
from kdzoo.apis import tool_args
from kdzoo.apis.data import CIFAR10_ROOT, missing_data
from kdzoo.apis.tool_args import ConfigOptionsAction, parse_option_value
from conftest import ARCHIVE, load_tool


# ------------------------------------------------------------------ the kdzoo command

def test_version(capsys):
    assert cli.main(['--version']) == 0
    assert capsys.readouterr().out.strip() == f'kdzoo {kdzoo.__version__}'


def test_list_configs_is_a_table_with_the_model_index(capsys):
    assert cli.main(['list-configs', 'deit_micro_distilled_cifar10']) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    for column in ('family', 'params (M)', 'FLOPs (G)', 'top-1 kdzoo', 'top-1 paper', 'file'):
        assert column in header
    cells = row.split()
    assert cells[0] == 'deit_micro_distilled_cifar10' and cells[1] == 'DeiT'
    assert float(cells[2]) == pytest.approx(0.8, abs=0.1)  # 0.8M parameters
    assert 'CIFAR-10' in row and '38.70' in row  # measured with kdzoo (the model index)
    assert cells[-1] == kdzoo.find_config('deit_micro_distilled_cifar10')


def test_list_configs_names_only_and_no_match(capsys):
    assert cli.main(['list-configs', 'deit_micro*', '--names']) == 0
    names = capsys.readouterr().out.split()
    assert 'deit/deit_micro_cifar10' in names and all('/' in n for n in names)
    with pytest.raises(SystemExit, match="no shipped config matches 'nothing_like_it'"):
        cli.main(['list-configs', 'nothing_like_it'])


def test_maintainer_tools_are_not_subcommands(capsys):
    cli.main(['--help'])
    out = capsys.readouterr().out
    assert 'model-zoo' not in out and 'fault-injection' not in out
    assert 'kdzoo --version' in out and 'kdzoo prepare-cifar10' in out
    with pytest.raises(SystemExit, match='python tools/model_zoo.py'):
        cli.main(['model-zoo'])


@pytest.mark.parametrize('tool,example', [('train', 'kdzoo train deit_micro_cifar10'),
                                          ('test', 'kdzoo test deit_micro_cifar10'),
                                          ('export', 'kdzoo export'),
                                          ('infer', 'kdzoo infer'),
                                          ('sweep', 'kdzoo sweep'),
                                          ('synthesize', 'kdzoo synthesize'),
                                          ('benchmark', 'kdzoo benchmark')])
def test_every_tool_help_names_the_program_and_says_a_config_name_works(tool, example,
                                                                        capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([tool, '--help'])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f'usage: kdzoo {tool} ')
    assert 'name of a config shipped with kdzoo' in ' '.join(out.split())
    examples = out.split('examples:', 1)[1]
    assert example in examples and len(examples.strip().splitlines()) >= 2


def test_a_tool_reads_a_config_name_itself(capsys):
    train = load_tool('train')
    args = train.parse_args(['deit_micro_cifar10', '--cfg-options', 'a=1'])
    assert args.config == kdzoo.find_config('deit_micro_cifar10')
    with pytest.raises(SystemExit):
        train.parse_args(['deit_micro_cifar1'])
    err = capsys.readouterr().err
    assert "config 'deit_micro_cifar1' is neither a file nor a shipped config" in err
    assert 'deit_micro_cifar10' in err and 'kdzoo list-configs' in err


# ------------------------------------------------------------------ --cfg-options

def test_dict_values_are_python_literals():
    stages = parse_option_value('[dict(size=16, iterations=10, lr=-0.25), dict(size=32)]')
    assert stages == [dict(size=16, iterations=10, lr=-0.25), dict(size=32)]
    assert parse_option_value('{"loss": {"type": "DKDLoss"}, "mix": true, "w": null}') == {
        'loss': {'type': 'DKDLoss'}, 'mix': True, 'w': None}
    assert parse_option_value("dict(pad=(1, 2), name='x')") == dict(pad=(1, 2), name='x')


def test_values_without_dicts_keep_mmengines_reading():
    assert parse_option_value('1,2') == [1, 2]
    assert parse_option_value('[a,b]') == ['a', 'b']
    assert parse_option_value('(1,2)') == (1, 2)
    assert parse_option_value('None') is None and parse_option_value('True') is True
    assert parse_option_value('DeiT') == 'DeiT' and parse_option_value('0.5') == 0.5
    # braces inside a plain value are text (model.teacher_outputs=...seed{data_seed})
    assert parse_option_value('records/x_seed{data_seed}') == 'records/x_seed{data_seed}'


@pytest.mark.parametrize('value,message', [
    ('[dict(type=DKDLoss)]', "'DKDLoss' is not a literal"),
    ('[dict(a=__import__("os").getcwd())]', 'is not a literal'),
    ('dict(**other)', 'is not a literal'),
    ('[dict(a=1]', 'is not a Python literal'),
])
def test_a_value_that_is_not_a_literal_is_a_usage_error(value, message, capsys):
    parser = argparse.ArgumentParser(prog='kdzoo train')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(['--cfg-options', f'model.x={value}'])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert 'model.x' in err and message in err and 'RecursionError' not in err


def test_dict_options_merge_into_the_config():
    from kdzoo.apis import find_config
    cfg = Config.fromfile(find_config('df_dearkd_micro_cifar10'))
    parser = argparse.ArgumentParser()
    tool_args.add_cfg_options(parser)
    opts = parser.parse_args(['--cfg-options', 'synthesis.synthesizer.stages='
                              '[dict(size=16, iterations=3), dict(size=32, iterations=2)]'])
    cfg.merge_from_dict(opts.cfg_options)
    assert [dict(s) for s in cfg.synthesis.synthesizer.stages] == [
        dict(size=16, iterations=3), dict(size=32, iterations=2)]


# ------------------------------------------------------------------ kdzoo:: bases

def test_a_child_config_inherits_a_shipped_one_by_name(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text(textwrap.dedent('''
        _base_ = ['kdzoo::deit/deit_micro_cifar10.py']
        model = dict(student=dict(embed_dim=64))
        train_cfg = dict(max_epochs=2)
    '''))
    cfg = Config.fromfile(str(child))
    assert cfg.model.student.embed_dim == 64 and cfg.model.student.depth == 4
    assert cfg.train_cfg.max_epochs == 2 and cfg.default_scope == 'kdzoo'
    assert '_scope_' not in cfg.pretty_text  # read like a relative base


def test_an_unknown_shipped_base_names_close_ones(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['kdzoo::deit/deit_micro_cifar.py']\n")
    with pytest.raises(FileNotFoundError, match=r"kdzoo ships no config "
                       r"'deit/deit_micro_cifar.py'.*kdzoo::deit/deit_micro_cifar10.py"):
        Config.fromfile(str(child))


def test_other_packages_bases_still_go_to_mmengine(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['nopkg::x/y.py']\n")
    with pytest.raises(AssertionError, match='does not support to load nopkg'):
        Config.fromfile(str(child))


# ------------------------------------------------------------------ data folders

def test_the_data_tool_writes_where_the_configs_read(tmp_path, monkeypatch, capsys):
    from kdzoo.apis import find_config
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(find_config('deit_micro_cifar10'))
    assert cfg.train_dataloader.dataset.data_root == CIFAR10_ROOT
    missing = missing_data(cfg)
    assert len(missing) == 2  # train/ and test/ (val and test read the same folder)
    assert "train_dataloader: image folder 'data/cifar10/train' does not exist" in missing[0]
    assert '`kdzoo prepare-cifar10`' in missing[0] and '--archive' in missing[0]
    load_tool('prepare_cifar10').main([])
    assert 'unpacked 6000 images of cifar10_mini.tar.gz to data/cifar10' in \
        capsys.readouterr().out
    assert missing_data(cfg) == []
    # Asking for another archive there is refused, naming both.
    other = tmp_path / 'cifar10-full.tar.gz'
    other.write_bytes(open(ARCHIVE, 'rb').read())
    with pytest.raises(SystemExit, match='data/cifar10 holds the images of '
                       'cifar10_mini.tar.gz, not of cifar10-full.tar.gz'):
        load_tool('prepare_cifar10').main(['--archive', str(other)])


def test_missing_data_hints(tmp_path, monkeypatch):
    from kdzoo.apis import find_config
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(find_config('df_dearkd_micro_cifar10'))
    [synthetic, *_] = missing_data(cfg, ('train_dataloader',))
    assert 'kdzoo synthesize CONFIG' in synthetic
    cfg = Config.fromfile(find_config('deit_s'))
    [imagenet] = missing_data(cfg, ('train_dataloader',))
    assert "'data/imagenet/train' does not exist" in imagenet
    assert 'train_dataloader.dataset.data_root=DIR' in imagenet
    cfg.train_dataloader.dataset.data_root = 'elsewhere/cifar10'
    [moved] = missing_data(cfg, ('train_dataloader',))
    assert 'kdzoo prepare-cifar10 --out elsewhere/cifar10' in moved
    os.makedirs(osp.join('elsewhere', 'cifar10', 'train'))
    assert missing_data(cfg, ('train_dataloader',)) == []


def test_train_stops_on_missing_data_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = load_tool('train')
    with pytest.raises(SystemExit) as info:
        train.main(['deit_micro_cifar10', '--work-dir', str(tmp_path / 'w')])
    assert "'data/cifar10/train' does not exist" in str(info.value.code)
    assert not (tmp_path / 'w').exists()
