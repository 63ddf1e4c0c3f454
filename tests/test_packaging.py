"""The wheel carries configs/, tools/ and model-index.yml under kdzoo/.mim and the console
entry points; the ``kdzoo`` command dispatches to the tools; the model index loads with
OpenMMLab's model-index tooling."""
import os
import os.path as osp
import sys
import zipfile

import pytest

import kdzoo
from kdzoo import cli
from conftest import REPO

ALIASES = ('train', 'test', 'export', 'synthesize')


def shipped_files(folder):
    """Files under REPO/folder, relative to REPO, without caches."""
    out = []
    for root, dirs, files in os.walk(osp.join(REPO, folder)):
        dirs[:] = [d for d in dirs if d != '__pycache__' and not d.startswith('.')]
        out += [osp.relpath(osp.join(root, f), REPO).replace(os.sep, '/') for f in files
                if not f.endswith('.pyc') and not f.startswith('.')]
    return out


@pytest.fixture(scope='module')
def wheel(kdzoo_wheel):
    """The names in the wheel and its entry points."""
    with zipfile.ZipFile(kdzoo_wheel) as z:
        names = z.namelist()
        entry_points = next(z.read(n).decode() for n in names
                            if n.endswith('.dist-info/entry_points.txt'))
    return set(names), entry_points


def test_the_wheel_carries_every_config_and_tool_under_mim(wheel):
    names, _ = wheel
    configs = shipped_files('configs')
    assert any(c.startswith('configs/_base_/') for c in configs)
    assert 'configs/deit/deit_micro_cifar10.py' in configs
    missing = [f for f in configs + shipped_files('tools') if f'kdzoo/.mim/{f}' not in names]
    assert missing == []
    assert {'kdzoo/.mim/tools/train.py', 'kdzoo/.mim/model-index.yml',
            'kdzoo/assets/cifar10_mini.tar.gz', 'kdzoo/cli.py'} <= names
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]


def test_the_wheel_declares_the_console_commands(wheel):
    _, entry_points = wheel
    lines = {ln.replace(' ', '') for ln in entry_points.splitlines()}
    assert 'kdzoo=kdzoo.cli:main' in lines
    for name in ALIASES:
        assert f'kdzoo-{name}=kdzoo.cli:{name}' in lines
        assert callable(getattr(cli, name))


# ------------------------------------------------------------------ the kdzoo command

def test_help_lists_the_tools_that_are_there(capsys):
    assert cli.main(['--help']) == 0
    out = capsys.readouterr().out
    tools = [f[:-3].replace('_', '-') for f in os.listdir(kdzoo.apis.tools_root())
             if f.endswith('.py')]
    assert 'train' in tools and 'model-zoo' in tools
    for name in tools + ['list-configs']:
        shown = f'\n  {name} ' in out
        assert shown == (name not in cli.MAINTAINER_TOOLS), name
    assert 'Train a kdzoo model' in out  # the tool's own docstring


def test_list_configs_prints_the_shipped_configs(capsys):
    assert cli.main(['list-configs', 'deit_micro*', '--names']) == 0
    printed = capsys.readouterr().out.split()
    assert printed == kdzoo.list_configs('deit_micro*')
    assert 'deit/deit_micro_cifar10' in printed


def test_train_help_runs_the_train_tool(capsys, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['kdzoo-train', '--help'])
    with pytest.raises(SystemExit) as info:
        cli.train()
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert 'Train a kdzoo model' in out and '--cfg-options' in out
    assert sys.argv == ['kdzoo-train', '--help']  # restored after the run


def test_a_config_name_is_resolved_to_its_file(monkeypatch, tmp_path):
    ran = []
    monkeypatch.setattr(cli, 'run_tool',
                        lambda path, args, prog=None: ran.append((path, args)) or 0)
    monkeypatch.chdir(tmp_path)  # names work from any directory
    cli.main(['train', 'deit_micro_cifar10', '--work-dir', 'deit_micro_cifar10'])
    path, args = ran[0]
    assert path == osp.join(kdzoo.apis.tools_root(), 'train.py')
    # Only the leading config argument is resolved, not an option's value.
    assert args == [kdzoo.apis.find_config('deit_micro_cifar10'), '--work-dir',
                    'deit_micro_cifar10']
    assert osp.isfile(args[0])
    # Existing files and unknown names are passed on unchanged.
    (tmp_path / 'deit_micro_cifar10').write_text('')
    cli.main(['test', 'deit_micro_cifar10', 'no_such_config_or_file'])
    assert ran[1][1] == ['deit_micro_cifar10', 'no_such_config_or_file']


def test_an_unknown_subcommand_lists_the_available_ones():
    with pytest.raises(SystemExit) as info:
        cli.main(['trian'])
    message = str(info.value.code)
    assert "unknown subcommand 'trian'" in message
    for name in ('train', 'test', 'list-configs', 'benchmark'):
        assert name in message


# ------------------------------------------------------------------ the model index

def test_the_model_index_loads_with_modelindex_and_has_every_model():
    from modelindex.load_model_index import load

    from kdzoo.apis.model_index import KDZOO_TOP1, PAPER_TOP1, load_metafile, zoo_models
    from kdzoo.apis.zoo_table import STD_TOP1
    index = load(osp.join(REPO, 'model-index.yml'))
    assert index.check(silent=True) == []
    models = {m.name: m for m in index.models}
    listed = zoo_models(REPO)
    assert len(listed) >= 27 and set(models) == {m['Name'] for m in listed}
    zoo = load_metafile(osp.join(REPO, 'configs', 'zoo', 'metafile.yml'), REPO)
    assert {c.name for c in index.collections} == {'DeiT', 'DearKD'} | {
        c['Name'] for c in zoo['Collections']}
    methods = {c['Name'] for c in zoo['Collections']}
    for entry in listed:
        model = models[entry['Name']]
        in_zoo = entry['Name'].startswith('zoo_')  # the zoo's method table (CIFAR-10)
        assert model.in_collection in (methods if in_zoo else ('DeiT', 'DearKD'))
        assert osp.isfile(osp.join(REPO, model.config))
        assert model.metadata.parameters > 0 and model.metadata.flops > 0
        assert model.metadata.training_data
        assert len(model.results or []) == len(entry.get('Results') or [])
        for result in model.results or []:
            assert result.task == 'Image Classification'
            assert result.dataset == ('CIFAR-10' if in_zoo or 'cifar10' in entry['Name']
                                      else 'ImageNet-1k')
            assert set(result.metrics) <= {KDZOO_TOP1, PAPER_TOP1, STD_TOP1}
    # The paper's figure and kdzoo's measured one stay apart.
    assert models['deit_ti_distilled'].results[0].metrics == {PAPER_TOP1: 74.5}
    assert models['deit_micro_distilled_cifar10'].results[0].metrics == {KDZOO_TOP1: 38.7}
    assert models['dearkd_ti'].results[0].metrics == {PAPER_TOP1: 74.8}
