"""The summary of a sweep: mean +- std table (markdown and CSV) and validation curves.

The spread over seeds is the sample standard deviation (``ddof=1``, the usual estimate
from a few seeds); a config with one seed has no std. The curves are read from mmengine's
scalar logs, ``<run dir>/<timestamp>[_<n>]/vis_data/scalars.json`` (a resumed run has one
such folder per start; later folders override earlier ones at the same step).
"""
import csv
import glob
import io
import json
import os
import os.path as osp

import numpy as np

from kdzoo.engine.atomic_checkpoint import write_text_atomic


def summarise(records, metric):
    """One row per config (in the order of ``records``): its seeds, the mean and std of
    every test metric over seeds, the per-seed values of ``metric`` and the wall-clock
    times."""
    groups = {}
    for r in records:
        groups.setdefault(r['config'], []).append(r)
    keys = [metric]
    for r in records:
        keys += [k for k in r['metrics'] if k not in keys]
    rows = []
    for name, runs in groups.items():
        row = dict(config=name, seeds=[r['seed'] for r in runs],
                   per_seed=[r['metrics'].get(metric) for r in runs],
                   wall_s=[r['wall_s'] for r in runs], mean={}, std={})
        for key in keys:
            values = np.array([r['metrics'][key] for r in runs if key in r['metrics']])
            if len(values) == 0:
                continue
            row['mean'][key] = float(values.mean())
            row['std'][key] = float(values.std(ddof=1)) if len(values) > 1 else None
        rows.append(row)
    return rows, keys


def _mean_std(row, key):
    if key not in row['mean']:
        return '-'
    std = row['std'][key]
    return f"{row['mean'][key]:.2f}" + ('' if std is None else f' ± {std:.2f}')


def markdown_table(rows, keys, metric):
    """The table of README.md: ``metric`` first, every top-1 metric, per-seed values."""
    shown = [metric] + [k for k in keys if k != metric and k.endswith('/top1')]
    head = (['config', 'seeds'] + shown + [f'{metric} per seed', 'wall-clock per run'])
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '|'.join(['---', '---:'] + ['---:'] * len(shown) + ['---', '---:']) + '|']
    for row in rows:
        per_seed = ', '.join('-' if v is None else f'{v:.2f}' for v in row['per_seed'])
        cells = ([row['config'], str(len(row['seeds']))] + [_mean_std(row, k) for k in shown]
                 + [per_seed, f"{np.mean(row['wall_s']):.0f} s"])
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def csv_table(rows, keys, metric):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(['config', 'n_seeds', 'seeds'] + [f'{k} {s}' for k in keys
                                                      for s in ('mean', 'std')]
                    + [f'{metric} per seed', 'wall_s mean', 'wall_s per seed'])
    for row in rows:
        stats = []
        for k in keys:
            std = row['std'].get(k)
            stats += [row['mean'].get(k, ''), '' if std is None else std]
        writer.writerow([row['config'], len(row['seeds']), ' '.join(map(str, row['seeds']))]
                        + stats + [' '.join('' if v is None else repr(v) for v in row['per_seed']),
                                   float(np.mean(row['wall_s'])),
                                   ' '.join(map(str, row['wall_s']))])
    return out.getvalue()


def read_curve(run_dir, metric):
    """{step: value} of ``metric`` over a run's validations, across all its log folders."""
    points = {}
    files = sorted(glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json')))
    for path in files:
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                entry = json.loads(line)
                if metric in entry and 'step' in entry:
                    points[int(entry['step'])] = float(entry[metric])
    return dict(sorted(points.items()))


def plot_curves(records, work_dir, metric, path):
    """Validation ``metric`` against epoch (or iteration) per config: each seed as a thin
    line, the mean over seeds in bold, a trained teacher's test accuracy dashed. Returns
    False (and writes nothing) when no run logged a validation."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, Agg for the PNG
    from matplotlib.ticker import MaxNLocator
    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    ax = fig.add_subplot()
    colors = [f'C{i}' for i in range(10)]
    order = list(dict.fromkeys(r['config'] for r in records))
    teacher_key = 'teacher/' + metric.split('/', 1)[-1]
    teachers, drawn = set(), False
    for i, name in enumerate(order):
        runs = [r for r in records if r['config'] == name]
        curves = [read_curve(osp.join(work_dir, name, f"seed{r['seed']}"), metric)
                  for r in runs]
        curves = [c for c in curves if c]
        color = colors[i % len(colors)]
        for c in curves:
            ax.plot(list(c), list(c.values()), color=color, linewidth=0.8, alpha=0.45)
        if curves:
            common = sorted(set.intersection(*(set(c) for c in curves)))
            mean = [np.mean([c[s] for c in curves]) for s in common]
            ax.plot(common, mean, color=color, linewidth=2.4, marker='o', markersize=3,
                    label=f'{name} (mean of {len(curves)} seeds)' if len(curves) > 1
                    else f'{name} (1 seed)')
            drawn = True
        teachers.update(round(r['metrics'][teacher_key], 2) for r in runs
                        if teacher_key in r['metrics'])
    if not drawn:
        return False
    for value in sorted(teachers):
        ax.axhline(value, color='0.35', linestyle='--', linewidth=1.2,
                   label=f'teacher ({value:.1f})')
    unit = records[0].get('x_unit', 'epoch')
    ax.set_xlabel(unit)
    ax.set_ylabel(f'validation {metric} (%)')
    ax.set_title(f'Validation {metric} per {unit} (thin: one seed, bold: mean)')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc='best')
    fig.tight_layout()
    tmp = f'{path}.{os.getpid()}.tmp'
    fig.savefig(tmp, format='png')
    os.replace(tmp, path)
    return True


def write_report(records, work_dir, metric, log=print):
    """Write ``results.md``, ``results.csv`` and ``curves.png`` into ``work_dir``;
    returns (rows, markdown table)."""
    rows, keys = summarise(records, metric)
    table = markdown_table(rows, keys, metric)
    note = ('Test metrics (%), mean ± sample std (ddof=1) over seeds; a config with one '
            'seed has no std.')
    write_text_atomic(osp.join(work_dir, 'results.md'), f'{note}\n\n{table}\n')
    write_text_atomic(osp.join(work_dir, 'results.csv'), csv_table(rows, keys, metric))
    curves = osp.join(work_dir, 'curves.png')
    if not plot_curves(records, work_dir, metric, curves):
        log(f'no run logged a validation of {metric}; curves.png not written')
        if osp.exists(curves):  # an earlier invocation's, now stale
            os.remove(curves)
    return rows, table
