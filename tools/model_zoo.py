"""Generate the model-zoo tables of configs/<family>/README.md from their metafile.yml
(OpenMMLab's model-index format; model-index.yml imports every family's metafile).

    python tools/model_zoo.py                 # rewrite every table
    python tools/model_zoo.py --check         # exit 1 if a table is stale
    python tools/model_zoo.py --update-stats  # recount Params/FLOPs into the metafiles
    python tools/model_zoo.py --from-sweep work_dirs/zoo_micro  # zoo results from a sweep

configs/zoo/README.md has the method table instead (:mod:`kdzoo.apis.zoo_table`): a row
per method, a column per student, mean ± std of the test top-1 over seeds; ``--from-sweep``
writes a sweep's results (its results.csv) into configs/zoo/metafile.yml first.

The table sits between the markers ``<!-- model-zoo:start -->`` and
``<!-- model-zoo:end -->`` of each family's README.md. Params and FLOPs count the model
used at test time (the student; the teacher costs nothing at inference); FLOPs are
multiply-accumulates of one image, the convention of the DeiT paper.
"""
import argparse
import glob
import os.path as osp
import sys

import yaml

from kdzoo.apis.model_index import KDZOO_TOP1, PAPER_TOP1, load_metafile, metafiles, top1
from kdzoo.apis.zoo_table import read_sweep, render_method_table, update_from_sweep
from kdzoo.engine.atomic_checkpoint import write_text_atomic

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
START, END = '<!-- model-zoo:start -->', '<!-- model-zoo:end -->'
ZOO = 'zoo'  # the folder whose README holds the method table


def _fmt_count(n, unit):
    return '-' if n is None else f'{n / unit:.2f}'


def render_table(meta):
    rows = ['| Config | Params (M) | FLOPs (G) | Top-1 (%) paper | Top-1 (%) kdzoo | Checkpoint |',
            '|---|---:|---:|---:|---:|---|']
    for m in meta['Models']:
        md = m.get('Metadata', {})
        has_paper, paper = top1(m, PAPER_TOP1)  # null in the metafile: the paper gives none
        _, ours = top1(m, KDZOO_TOP1)
        weights = m.get('Weights')
        cfg = m['Config']
        rows.append(
            f"| [{osp.basename(cfg)}]({osp.relpath(osp.join(ROOT, cfg), osp.join(ROOT, osp.dirname(cfg)))}) "
            f"| {_fmt_count(md.get('Parameters'), 1e6)} | {_fmt_count(md.get('FLOPs'), 1e9)} "
            f"| {('unknown' if paper is None else paper) if has_paper else '-'} "
            f"| {'-' if ours is None else ours} "
            f"| {f'[model]({weights})' if weights else '-'} |")
    return '\n'.join(rows)


def updated_readme(readme_text, table, readme_path):
    if START not in readme_text or END not in readme_text:
        raise ValueError(f'{readme_path} lacks the markers {START} / {END}')
    head, rest = readme_text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f'{head}{START}\n{table}\n{END}{tail}'


def families():
    """The family folders of the metafiles that model-index.yml imports; a metafile the
    index leaves out is an error (model-index tooling would not see it)."""
    imported = metafiles(ROOT)
    found = glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yml'))
    left_out = sorted(osp.relpath(p, ROOT) for p in set(map(osp.abspath, found))
                      - set(map(osp.abspath, imported)))
    if left_out:
        raise ValueError(f'model-index.yml does not import {left_out}; add them to its Import')
    return [osp.dirname(p) for p in imported]


def count_stats(config, resolution=None):
    """(parameters, FLOPs) of the test-time network of ``config`` at ``resolution``
    (default: the student's own image size)."""
    import torch
    from mmengine.analysis import FlopAnalyzer

    from kdzoo.apis import build_student

    # The architecture is all that counts here: pretrained weights are not loaded.
    net = build_student(osp.join(ROOT, config))
    size = resolution or getattr(getattr(net, 'patch_embed', None), 'img_size', 224)
    params = sum(p.numel() for p in net.parameters())
    analyzer = FlopAnalyzer(net, (torch.zeros(1, 3, size, size),))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flops)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return params, int(analyzer.total())


def _sdpa_flops(inputs, outputs):
    # q @ k^T and attn @ v: 2 * B * heads * N * N * head_dim multiply-accumulates.
    from mmengine.analysis.jit_handles import get_shape
    b, h, n, d = get_shape(inputs[0])
    return 2 * b * h * n * get_shape(inputs[1])[2] * d


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true', help='fail if a table is stale')
    parser.add_argument('--update-stats', action='store_true',
                        help='recount Params/FLOPs of every model into its metafile')
    parser.add_argument('--from-sweep', nargs='+', metavar='SWEEP_DIR', default=[],
                        help="write these sweeps' results (their results.csv) into "
                             'configs/zoo/metafile.yml, then render the tables')
    parser.add_argument('--min-seeds', type=int, default=3, metavar='N',
                        help='with --from-sweep, write only configs with at least N finished '
                             'seeds (default 3: the table gives mean +- std over 3 seeds)')
    args = parser.parse_args(argv)
    if args.min_seeds < 1:
        parser.error(f'--min-seeds must be at least 1, got {args.min_seeds}')
    stale = []
    for family in families():
        meta_path = osp.join(family, 'metafile.yml')
        meta = load_metafile(meta_path, ROOT)
        zoo = osp.basename(family) == ZOO
        if zoo and args.from_sweep:
            for folder in args.from_sweep:
                results = osp.join(folder, 'results.csv')
                if not osp.isfile(results):
                    raise SystemExit(f'--from-sweep {folder}: no results.csv there (a sweep '
                                     'writes it when a run ends)')
                swept = read_sweep(results)
                names = update_from_sweep(meta, swept, min_seeds=args.min_seeds)
                print(f'{folder}: results of {len(names)} zoo configs: {", ".join(names)}')
                short = [f"{c} ({len(r['seeds'])})" for c, r in swept.items()
                         if len(r['seeds']) < args.min_seeds]
                if short:
                    print(f'{folder}: left out, fewer than {args.min_seeds} seeds so far: '
                          + ', '.join(short))
            write_text_atomic(meta_path, yaml.safe_dump(meta, sort_keys=False,
                                                       allow_unicode=True, width=100))
        if args.update_stats:
            for m in meta['Models']:
                params, flops = count_stats(m['Config'], m.get('Metadata', {}).get('Resolution'))
                m.setdefault('Metadata', {}).update(Parameters=params, FLOPs=flops)
                print(f"{m['Config']}: {params / 1e6:.2f}M params, {flops / 1e9:.2f}G FLOPs")
            write_text_atomic(meta_path, yaml.safe_dump(meta, sort_keys=False,
                                                       allow_unicode=True, width=100))
        readme_path = osp.join(family, 'README.md')
        with open(readme_path) as f:
            text = f.read()
        table = render_method_table(meta, family, ROOT) if zoo else render_table(meta)
        new = updated_readme(text, table, readme_path)
        if new != text:
            stale.append(osp.relpath(readme_path, ROOT))
            if not args.check:
                write_text_atomic(readme_path, new)
    if args.check and stale:
        print('stale model-zoo tables (run python tools/model_zoo.py): ' + ', '.join(stale))
        return 1
    print('updated: ' + (', '.join(stale) or 'nothing') if not args.check else 'tables up to date')
    return 0


if __name__ == '__main__':
    sys.exit(main())
