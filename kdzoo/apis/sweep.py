"""Sweeps: a set of configs x seeds trained one after another, resumable, then summarised.

Each run trains through :class:`kdzoo.engine.Runner` (as ``tools/train.py`` does) in
``WORK_DIR/<config name>/seed<k>`` and, once training and the test have finished, writes
the marker ``result.json`` there (atomically) with its test metrics and wall-clock time.
A second invocation skips every run with a marker and resumes an interrupted one from its
latest checkpoint. The summary (``results.md``, ``results.csv``, ``curves.png``) comes
from :mod:`kdzoo.apis.sweep_report`; it is rewritten after every finished run, so a sweep
that is interrupted (or spread over several sittings) has the summary of what finished.

    from kdzoo.apis import run_sweep
    run_sweep(['deit_micro_cifar10', 'deit_micro_distilled_cifar10'], seeds=[0, 1],
              work_dir='work_dirs/sweep')
"""
import hashlib
import json
import os.path as osp
import time

from kdzoo.engine.atomic_checkpoint import write_text_atomic
from .configs import find_config
from .model import ConfigError, load_config

MARKER = 'result.json'


def plan_sweep(configs, seeds, cfg_options=None, allow_unread=False, log=None):
    """[(name, config path)] for ``configs`` (paths or shipped config names), after
    checking every argument and that every image folder the runs read exists; raises
    ConfigError before any work.

    A ``cfg_options`` key that nothing reads in one of the configs (a typo, or a variable
    of the config file) is an error too, or with ``allow_unread`` a line to ``log``."""
    if not configs:
        raise ConfigError('a sweep needs at least one config')
    if seeds is None or len(seeds) == 0:
        raise ConfigError('a sweep needs at least one seed (--seeds 0 1 2)')
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        raise ConfigError(f'seeds must be integers >= 0, got {bad}')
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f'seeds repeat: {list(seeds)}; give each seed once')
    if cfg_options and any(k == 'randomness' or k.startswith('randomness.seed')
                           for k in cfg_options):
        raise ConfigError('randomness.seed is set by the sweep from its seeds; leave it out '
                          'of the config options')
    plan = []
    for config in configs:
        path = find_config(config)
        name = osp.splitext(osp.basename(path))[0]
        if any(name == n for n, _ in plan):
            raise ConfigError(f'two configs are named {name!r} ({path} and '
                              f'{dict(plan)[name]}); their runs would share a folder')
        plan.append((name, path))
    if cfg_options:
        from mmengine.config import Config

        from kdzoo.engine.config_check import unread_error, unread_options
        for name, path in plan:
            unread = unread_options(Config.fromfile(path), cfg_options)
            if unread and not allow_unread:
                raise ConfigError(f'{name}: {unread_error(unread)}')
            for note in unread:
                (log or _print)(f'{name}: warning: {note}')
    from .data import missing_data
    for name, path in plan:
        missing = missing_data(load_config(path, cfg_options))
        if missing:
            raise ConfigError(f'{name}: ' + f'\n{name}: '.join(missing))
    return plan


def run_config(name, path, seed, work_dir, cfg_options=None):
    """The config of one run: ``cfg_options`` merged, the work dir and seed set."""
    cfg = load_config(path, cfg_options)
    cfg.work_dir = work_dir
    cfg.merge_from_dict({'randomness.seed': seed})
    # mmengine keys its logger and visualizer on the experiment name: the same config
    # started in the same second for two seeds would otherwise share one log.
    cfg.experiment_name = f'{name}_seed{seed}'
    if cfg.get('test_dataloader') is None or cfg.get('test_evaluator') is None:
        raise ConfigError(f'{path}: a sweep reports the test metrics; the config needs '
                          'test_dataloader and test_evaluator')
    return cfg


def settings_digest(cfg):
    """A digest of a run's settings, to refuse mixing runs made with other settings (the
    work dir is left out: the same folder may be named by a relative or absolute path)."""
    settings = {k: v for k, v in cfg.to_dict().items() if k != 'work_dir'}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_marker(run_dir):
    path = osp.join(run_dir, MARKER)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def train_and_test(cfg):
    """Train and test one config through kdzoo's Runner (resuming from the latest
    checkpoint of its work dir if there is one); returns (test metrics, resumed-from
    checkpoint or None)."""
    import kdzoo  # noqa: F401  (registries, compatibility fixes)
    from kdzoo.engine import Runner
    from kdzoo.engine.atomic_checkpoint import latest_checkpoint
    latest = latest_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
    if latest is not None:
        cfg.resume, cfg.load_from = True, latest
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    return {k: float(v) for k, v in metrics.items()}, latest


def run_sweep(configs, seeds, work_dir, cfg_options=None, metric='joint/top1', log=None,
              allow_unread=False):
    """Train every config with every seed, one run after another, writing
    ``WORK_DIR/results.md``, ``results.csv`` and ``curves.png`` after every finished run
    (they hold the runs finished so far, in the sweep's order).

    Args:
        configs: config paths or shipped config names.
        seeds: the seeds (``randomness.seed`` of each run).
        work_dir: the sweep's folder; run ``(config, k)`` works in ``<name>/seed<k>``.
        cfg_options: ``--cfg-options``-style overrides for every run.
        metric: the test metric the table leads with and the curves show.
        log: where the one line per run goes (default: printed at once).
        allow_unread: run even if a ``cfg_options`` key is read by nothing (logged);
            by default that stops the sweep before any run.

    A run that fails stops the sweep with its error. Returns the per-config summary rows
    of :func:`kdzoo.apis.sweep_report.summarise` and the markdown table.
    """
    from .sweep_report import write_report
    log = log or _print
    plan = plan_sweep(configs, list(seeds), cfg_options, allow_unread, log)
    records = []
    runs = [(name, path, seed) for name, path in plan for seed in seeds]
    for i, (name, path, seed) in enumerate(runs, 1):
        run_dir = osp.join(work_dir, name, f'seed{seed}')
        cfg = run_config(name, path, seed, run_dir, cfg_options)
        digest = settings_digest(cfg)
        where = f'[{i}/{len(runs)}] {name} seed {seed}'
        record = read_marker(run_dir)
        if record is not None:
            if record.get('settings') != digest:
                raise ConfigError(f'{run_dir} holds a finished run made with other settings '
                                  'than this invocation (config or options changed); use '
                                  'another --work-dir or remove that folder')
            log(f'{where}: skipped, finished before ({metric} = '
                f'{_fmt(record["metrics"].get(metric))})')
            records.append(record)
            continue
        log(f'{where}: started in {run_dir}')
        start = time.perf_counter()
        try:
            metrics, resumed = train_and_test(cfg)
        except BaseException:
            log(f'{where}: failed; the sweep stops (run it again to resume this run)')
            raise
        if metric not in metrics:
            raise ConfigError(f'metric {metric!r} is not among the test metrics of {name}: '
                              f'{sorted(metrics)}; choose one with --metric')
        record = dict(config=name, config_path=osp.abspath(path), seed=seed, metrics=metrics,
                      wall_s=round(time.perf_counter() - start, 2), resumed_from=resumed,
                      x_unit='epoch' if 'max_epochs' in cfg.train_cfg else 'iteration',
                      settings=digest)
        write_text_atomic(osp.join(run_dir, MARKER), json.dumps(record, indent=1) + '\n')
        log(f'{where}: finished in {record["wall_s"]:.0f} s, {metric} = {_fmt(metrics[metric])}'
            + (f' (resumed from {osp.basename(resumed)})' if resumed else ''))
        records.append(record)
        if i < len(runs):  # the summary so far; the last one is written below
            write_report(records, work_dir, metric, log=lambda line: None)
    return write_report(records, work_dir, metric, log=log)


def _print(line):
    print(line, flush=True)


def _fmt(value):
    return '-' if value is None else f'{value:.2f}'
