"""The method table of configs/zoo: every distillation method against the same teacher, one
column per student, from ``configs/zoo/metafile.yml``.

The metafile has a collection per method (its paper, kind and code) and a model per
(method, student) config; a model's result holds the mean and sample std of the test
top-1 over seeds, and its metadata the seeds and per-seed values (not the wall-clock: the
runs of a table are made over several sittings, on a machine that may be doing other work,
so their times are measured apart; see configs/zoo/README.md). The results come
from a sweep (``tools/sweep.py``) through :func:`update_from_sweep`, so a table can be
built across several sittings: configs not run yet show as such.
"""
import csv
import math
import os.path as osp

from .model_index import KDZOO_TOP1

STD_TOP1 = 'Top 1 Accuracy (std)'
#: The columns of the table: the ``Student`` metadata of the zoo's models, in order.
STUDENTS = ('micro DeiT', 'ResNet-8')
KINDS = ('baseline', 'logit', 'feature', 'relation', 'transformer')
SWEEP_METRIC = 'joint/top1'


def check_zoo_metafile(meta, path='configs/zoo/metafile.yml'):
    """Raise a ValueError naming the entry when a collection lacks its kind or a model its
    student, or a student or kind is not one of the table's."""
    for c in meta.get('Collections') or []:
        kind = (c.get('Metadata') or {}).get('Kind')
        if kind not in KINDS:
            raise ValueError(f"{path}: collection {c.get('Name')!r} has Kind {kind!r}; one of "
                             f'{KINDS}')
    seen = set()
    for m in meta.get('Models') or []:
        student = (m.get('Metadata') or {}).get('Student')
        if student not in STUDENTS:
            raise ValueError(f"{path}: model {m.get('Name')!r} has Student {student!r}; one "
                             f'of {STUDENTS}')
        key = (m['In Collection'], student)
        if key in seen:
            raise ValueError(f'{path}: two models of {key[0]} for the student {student}')
        seen.add(key)


def _cell(model, folder_of_readme, root):
    if model is None:
        return '-'
    link = osp.relpath(osp.join(root, model['Config']), folder_of_readme)
    mean = std = None
    for result in model.get('Results') or []:
        mean = result['Metrics'].get(KDZOO_TOP1, mean)
        std = result['Metrics'].get(STD_TOP1, std)
    if mean is None:
        return f'not run yet ([config]({link}))'
    std = '' if std is None else f' ± {std:.2f}'
    return f'[{mean:.2f}{std}]({link})'


def render_method_table(meta, folder, root):
    """The markdown table: a row per collection (method), a column per student."""
    check_zoo_metafile(meta)
    by_key = {(m['In Collection'], m['Metadata']['Student']): m for m in meta['Models']}
    head = ['Method', 'Kind', 'Paper', 'Code'] + [f'{s} (top-1 %)' for s in STUDENTS]
    rows = ['| ' + ' | '.join(head) + ' |',
            '|' + '|'.join(['---'] * 4 + ['---:'] * len(STUDENTS)) + '|']
    for c in meta['Collections']:
        paper = c.get('Paper') or {}
        paper = f"[{paper['Title']}]({paper['URL']})" if paper.get('URL') else '-'
        code = (c.get('Code') or {}).get('URL')
        code = f'[{osp.basename(code)}]({osp.relpath(osp.join(root, code), folder)})' \
            if code else '-'
        cells = [_cell(by_key.get((c['Name'], s)), folder, root) for s in STUDENTS]
        rows.append(f"| {c['Name']} | {c['Metadata']['Kind']} | {paper} | {code} | "
                    + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def read_sweep(results_csv, metric=SWEEP_METRIC):
    """{config name: dict(seeds, mean, std, values)} from a sweep's ``results.csv``."""
    out = {}
    with open(results_csv, newline='') as f:
        for row in csv.DictReader(f):
            if f'{metric} mean' not in row:
                raise ValueError(f'{results_csv} has no column {metric!r} mean')
            values = [float(v) for v in row[f'{metric} per seed'].split()]
            std = row.get(f'{metric} std')
            out[row['config']] = dict(
                seeds=[int(s) for s in row['seeds'].split()],
                mean=float(row[f'{metric} mean']),
                std=float(std) if std not in (None, '') else None,
                values=values)
    return out


def update_from_sweep(meta, results, min_seeds=1):
    """Write ``results`` (:func:`read_sweep`) into the zoo's models whose config name
    (the file name without ``.py``) they hold; returns the names updated. A config with
    fewer than ``min_seeds`` finished seeds is left as it is."""
    updated = []
    for m in meta['Models']:
        name = osp.splitext(osp.basename(m['Config']))[0]
        r = results.get(name)
        if r is None or len(r['seeds']) < min_seeds:
            continue
        metrics = {KDZOO_TOP1: round(r['mean'], 2)}
        if r['std'] is not None and not math.isnan(r['std']):
            metrics[STD_TOP1] = round(r['std'], 2)
        m['Results'] = [dict(Task='Image Classification', Dataset='CIFAR-10',
                             Metrics=metrics)]
        md = m.setdefault('Metadata', {})
        md['Seeds'] = list(r['seeds'])
        md['Top 1 Accuracy per seed'] = [round(v, 2) for v in r['values']]
        updated.append(m['Name'])
    return updated
