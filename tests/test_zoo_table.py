"""The zoo's method table (configs/zoo/README.md): current with its metafile, listing every
zoo config, filled from a sweep's results.csv as the sweep writes it."""
import glob
import os.path as osp

import pytest
import yaml

from conftest import REPO, load_tool
from kdzoo.apis.model_index import KDZOO_TOP1, load_metafile
from kdzoo.apis.sweep_report import csv_table, summarise
from kdzoo.apis.zoo_table import (STD_TOP1, STUDENTS, check_zoo_metafile, read_sweep,
                                  render_method_table, update_from_sweep)

ZOO = osp.join(REPO, 'configs', 'zoo')
META = osp.join(ZOO, 'metafile.yml')
#: Methods with one student only, and why.
ONE_STUDENT = {
    'DearKD': 'micro DeiT',  # its student is a transformer with MHCA blocks
    'ViTKD': 'micro DeiT',  # methods for transformer students
    'Manifold distillation': 'micro DeiT',
}


def zoo_meta():
    return load_metafile(META, REPO)


def test_the_table_is_current():
    zoo = load_tool('model_zoo')
    with open(osp.join(ZOO, 'README.md')) as f:
        text = f.read()
    assert zoo.updated_readme(text, render_method_table(zoo_meta(), ZOO, REPO),
                              'README.md') == text, 'run python tools/model_zoo.py'


def test_every_zoo_config_is_in_the_table_and_every_method_has_both_students():
    meta = zoo_meta()
    listed = {m['Config'] for m in meta['Models']}
    shipped = {osp.relpath(p, REPO) for p in glob.glob(osp.join(ZOO, '*.py'))}
    assert shipped - listed == set()
    for c in meta['Collections']:
        students = {m['Metadata']['Student'] for m in meta['Models']
                    if m['In Collection'] == c['Name']}
        expected = {ONE_STUDENT[c['Name']]} if c['Name'] in ONE_STUDENT else set(STUDENTS)
        assert students == expected, c['Name']
    assert '- configs/zoo/metafile.yml' in open(osp.join(REPO, 'model-index.yml')).read()


def test_the_metafile_is_checked():
    meta = zoo_meta()
    meta['Models'][0]['Metadata']['Student'] = 'ResNet-9'
    with pytest.raises(ValueError, match="Student 'ResNet-9'; one of"):
        check_zoo_metafile(meta)
    meta = zoo_meta()
    meta['Collections'][1]['Metadata']['Kind'] = 'magic'
    with pytest.raises(ValueError, match="Kind 'magic'"):
        check_zoo_metafile(meta)


def sweep_csv(path, runs):
    records = [dict(config=c, seed=s, metrics={'joint/top1': v, 'joint/top5': 90.0},
                    wall_s=w) for c, s, v, w in runs]
    rows, keys = summarise(records, 'joint/top1')
    path.write_text(csv_table(rows, keys, 'joint/top1'))
    return str(path)


def test_results_of_a_sweep_fill_the_table(tmp_path):
    results = sweep_csv(tmp_path / 'results.csv', [
        ('kd_resnet8_cifar10', 0, 40.0, 100.0), ('kd_resnet8_cifar10', 1, 42.0, 110.0),
        ('kd_resnet8_cifar10', 2, 44.0, 120.0), ('dkd_resnet8_cifar10', 0, 41.5, 90.0),
        ('not_a_zoo_config', 0, 10.0, 1.0)])
    meta = zoo_meta()
    for model in meta['Models']:  # as before any run, whatever the shipped file holds
        model.pop('Results', None)
    updated = update_from_sweep(meta, read_sweep(results))
    assert sorted(updated) == ['zoo_dkd_resnet8', 'zoo_kd_resnet8']
    kd = next(m for m in meta['Models'] if m['Name'] == 'zoo_kd_resnet8')
    assert kd['Results'][0]['Metrics'] == {KDZOO_TOP1: 42.0, STD_TOP1: 2.0}
    assert kd['Metadata']['Seeds'] == [0, 1, 2]
    assert kd['Metadata']['Top 1 Accuracy per seed'] == [40.0, 42.0, 44.0]
    dkd = next(m for m in meta['Models'] if m['Name'] == 'zoo_dkd_resnet8')
    assert dkd['Results'][0]['Metrics'] == {KDZOO_TOP1: 41.5}  # one seed: no std
    table = render_method_table(meta, ZOO, REPO)
    row = next(line for line in table.splitlines() if line.startswith('| KD |'))
    assert '[42.00 ± 2.00](kd_resnet8_cifar10.py)' in row
    assert 'not run yet ([config](kd_deit_micro_cifar10.py))' in row
    # Written back, the metafile stays a valid one.
    (tmp_path / 'metafile.yml').write_text(yaml.safe_dump(meta, sort_keys=False))
    assert load_metafile(str(tmp_path / 'metafile.yml'), REPO)['Models']


def test_the_tool_fills_the_metafile_from_a_sweep_folder(tmp_path, monkeypatch, capsys):
    zoo = load_tool('model_zoo')
    sweep_csv(tmp_path / 'results.csv', [('dist_resnet8_cifar10', 0, 30.0, 5.0),
                                          ('dist_resnet8_cifar10', 1, 31.0, 5.0)])
    written = {}
    monkeypatch.setattr(zoo, 'write_text_atomic', lambda p, t: written.__setitem__(p, t))
    # Two seeds are fewer than the table's three: left as it was, and said so.
    assert zoo.main(['--from-sweep', str(tmp_path)]) == 0
    meta = yaml.safe_load(written[META])
    dist = next(m for m in meta['Models'] if m['Name'] == 'zoo_dist_resnet8')
    assert 'Results' not in dist or dist['Results'][0]['Metrics'][KDZOO_TOP1] != 30.5
    assert 'dist_resnet8_cifar10 (2)' in capsys.readouterr().out
    assert zoo.main(['--from-sweep', str(tmp_path), '--min-seeds', '2']) == 0
    meta = yaml.safe_load(written[META])
    dist = next(m for m in meta['Models'] if m['Name'] == 'zoo_dist_resnet8')
    assert dist['Results'][0]['Metrics'][KDZOO_TOP1] == 30.5
    assert '[30.50 ± 0.71](dist_resnet8_cifar10.py)' in written[osp.join(ZOO, 'README.md')]
    with pytest.raises(SystemExit, match='no results.csv'):
        zoo.main(['--from-sweep', str(tmp_path / 'nothing')])
