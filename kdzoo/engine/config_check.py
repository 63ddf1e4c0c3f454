"""Checks of a config before a run, and what kdzoo's Runner settles in it.

mmengine's ``Config.merge_from_dict`` accepts any key, so ``--cfg-options max_epoch=3``
(for ``train_cfg.max_epochs``) adds a top-level key that nothing reads and the run would
go on with the configured schedule. :func:`unread_options` names such keys, with the
closest key that is read (at the top level or nested, e.g. ``train_cfg.max_epochs``); the
tools stop on them unless ``--allow-unread``.

:func:`prepare_config` (called by kdzoo's ``Runner.from_cfg``) removes kdzoo's keyed
default hooks set to None, which mmengine refuses, and keeps the stage switch that was set
last when a merge left several (:func:`resolve_stage_switch`).
"""
import copy
import difflib
import inspect
import os.path as osp

from mmengine.runner import Runner as MMRunner

# Read by mmengine's Runner outside its constructor's arguments (runner.py, 0.10.7) and by
# OpenMMLab's config loading.
MMENGINE_KEYS = ('model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'compile',
                 'activation_checkpointing', 'efficient_conv_bn_eval', 'gpu_ids',
                 'custom_imports', 'tta_model', 'tta_pipeline', '_base_')
# Read by kdzoo itself: synthesis settings (kdzoo.apis.synthesis), the inference API's
# pipeline and class names (kdzoo.apis.inference).
KDZOO_KEYS = ('synthesis', 'classes', 'test_pipeline')


def runner_keys():
    """The top-level keys that mmengine's ``Runner.from_cfg`` passes to the runner."""
    params = inspect.signature(MMRunner.__init__).parameters
    return tuple(p for p in params if p not in ('self', 'cfg'))


def read_keys():
    """Top-level keys something reads while running: mmengine's and kdzoo's."""
    return set(runner_keys()) | set(MMENGINE_KEYS) | set(KDZOO_KEYS)


def _nested_keys(node, prefix='', depth=3):
    """Dotted paths of the keys inside the config's dicts (not lists), ``depth`` deep."""
    if depth == 0 or not isinstance(node, dict):
        return
    for key, value in node.items():
        if not isinstance(key, str):
            continue
        path = f'{prefix}{key}'
        if prefix:
            yield path
        yield from _nested_keys(value, path + '.', depth - 1)


def closest_keys(name, cfg):
    """The keys that are read closest to ``name``: the nested ``a.b`` paths whose last part
    is ``name`` (up to 3), else the one top-level key or nested path closest to it; empty
    when nothing is close."""
    nested = sorted(_nested_keys(cfg.to_dict()))
    same = [p for p in nested if p.rsplit('.', 1)[1] == name]
    if same:
        return same[:3]
    candidates = [(k, k) for k in sorted(read_keys())] + [(p, p.rsplit('.', 1)[1])
                                                          for p in nested]
    best, best_ratio = [], 0.75
    for path, compared in candidates:
        ratio = difflib.SequenceMatcher(None, name, compared).ratio()
        if ratio > best_ratio:
            best, best_ratio = [path], ratio
    return best


def unread_options(cfg, options):
    """One warning line per top-level key of ``options`` (``--cfg-options``, a dict of
    dotted keys) that nothing reads while running; ``cfg`` is the config before the
    options are merged.

    A key nothing reads is either new (a typo: ``max_epoch``) or a variable of the config
    file (``max_epochs = 20`` in a schedule file): its uses (``train_cfg =
    dict(max_epochs=max_epochs)``) were filled in when the file was read, so changing the
    variable afterwards changes nothing either.
    """
    if not options:
        return []
    read = read_keys()
    notes = []
    for option in options:
        top = option.split('.', 1)[0]
        if top in read:
            continue
        hint = closest_keys(top, cfg)
        if top in cfg:
            why = (f'{top!r} is a variable of the config file, already filled in where the '
                   'file uses it, and nothing reads it while running')
        else:
            why = f'no part of kdzoo or mmengine reads a top-level key {top!r}'
        notes.append(f'--cfg-options {option}: {why}, so this changes nothing'
                     + (f'; did you mean {" or ".join(hint)}?' if hint else ''))
    return notes


def unread_error(notes):
    """The error of :func:`unread_options`' notes when the run may not go on: one line per
    key, then the flag that runs anyway."""
    return '\n'.join(notes) + ('\n(--allow-unread runs anyway, with this as a warning in '
                               'the log)')


# ----- default hooks set to None --------------------------------------------------------------
#: The keyed default hooks of mmengine 0.10.7 (``Runner.register_default_hooks``): a None
#: there removes mmengine's own default; for any other key mmengine raises a bare
#: AssertionError.
MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger',
                          'param_scheduler', 'checkpoint')


def drop_none_hooks(default_hooks):
    """``default_hooks`` without the None entries that mmengine would refuse.

    kdzoo's runtime keys its own hooks (``progress_bar``, ``data_check``, and
    ``distill_stage`` in configs with stages) so that a child config or
    ``--cfg-options default_hooks.progress_bar=None`` removes them, as mmengine lets None
    remove its own keyed hooks (those entries are kept: mmengine pops them itself, and
    leaving them out would bring mmengine's default back).
    """
    if not isinstance(default_hooks, dict):
        return default_hooks
    return type(default_hooks)({k: v for k, v in default_hooks.items()
                                if v is not None or k in MMENGINE_DEFAULT_HOOKS})


# ----- the stage switch: the key set last wins ------------------------------------------------
#: DistillStageHook's exclusive ways to say when distillation stops.
SWITCH_KEYS = ('switch_epoch', 'switch_iter', 'switch_ratio', 'schedule')


def _own_stage_switch(path):
    """What the text of the config file ``path`` itself (not its bases) sets in
    ``default_hooks.distill_stage``: ``None`` when it does not touch it, ``'removed'``
    for ``distill_stage=None``, else the tuple of switch keys it names (empty for a
    dict that names none, e.g. only ``by_epoch``); ``'unknown'`` when the value is not
    written as a ``dict(...)`` or ``{...}`` literal."""
    import ast
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    hooks = None
    for node in tree.body:  # the last assignment is the one that counts
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'default_hooks' for t in node.targets):
            hooks = node.value
    if hooks is None:
        return None
    entries = _literal_items(hooks)
    if entries is None:
        return 'unknown'
    stage = entries.get('distill_stage')
    if stage is None:
        return None
    if isinstance(stage, ast.Constant) and stage.value is None:
        return 'removed'
    items = _literal_items(stage)
    if items is None:
        return 'unknown'
    return tuple(k for k in items if k in SWITCH_KEYS
                 and not (isinstance(items[k], ast.Constant) and items[k].value is None))


def _literal_items(node):
    """{key: value node} of a ``dict(k=v, ...)`` call or a ``{'k': v}`` literal with
    string keys; None for anything else."""
    import ast
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and not node.args and \
            all(k.arg is not None for k in node.keywords):
        return {k.arg: k.value for k in node.keywords}
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) and
                                          isinstance(k.value, str) for k in node.keys):
        return {k.value: v for k, v in zip(node.keys, node.values)}
    return None


def last_switch_key(path):
    """The switch key that the config file ``path`` and its bases set last, in mmengine's
    merge order (each file's bases, in their order, before the file's own text); None when
    none is set or it cannot be told (a value that is not a literal dict, two switch keys
    in one file's text)."""
    from mmengine.config import Config
    last = None

    def walk(file):
        nonlocal last
        for base in Config._get_base_files(file):
            walk(Config._get_cfg_path(base, file)[0])
        own = _own_stage_switch(file)
        if own in ('unknown', 'removed'):
            last = own
        elif own is not None and len(own) > 1:
            last = 'unknown'
        elif own:
            last = own[0]

    try:
        walk(osp.abspath(path))
    except Exception:  # a base mmengine cannot find either fails the config's loading
        return None
    return last if last in SWITCH_KEYS else None


def resolve_stage_switch(cfg):
    """Keep one switch key of ``default_hooks.distill_stage``: the one set last.

    mmengine merges a child config's dicts into its base's, so a child of a DearKD config
    that says ``default_hooks = dict(distill_stage=dict(type='DistillStageHook',
    switch_epoch=250))`` inherits the base's ``switch_ratio`` too, and ``--cfg-options
    default_hooks.distill_stage.switch_epoch=1`` does the same; the hook takes exactly one
    switch. The rule here: the switch key set last wins, and the other switch keys are
    dropped. Last means, in this order, the ``--cfg-options`` (a switch key whose value
    differs from the config file's, or that the file does not have) and then the config
    files in mmengine's merge order (a file after its bases), read from their text. When
    that cannot be told (no file, a key set twice at the same level, a non-literal
    value), the config is left as it is and the hook names the keys.

    Returns ``cfg`` itself when there is nothing to resolve, else a changed copy.
    """
    hooks = cfg.get('default_hooks')
    stage = hooks.get('distill_stage') if isinstance(hooks, dict) else None
    if not isinstance(stage, dict):
        return cfg
    present = [k for k in SWITCH_KEYS if stage.get(k) is not None]
    if len(present) < 2:
        return cfg
    filename = getattr(cfg, 'filename', None)
    if not filename or not osp.isfile(filename):
        return cfg
    from mmengine.config import Config
    file_hooks = Config.fromfile(filename).get('default_hooks') or {}
    file_stage = file_hooks.get('distill_stage') or {}
    by_option = [k for k in present if k not in file_stage or file_stage[k] != stage[k]]
    if len(by_option) == 1:
        winner = by_option[0]
    elif not by_option:
        winner = last_switch_key(filename)
    else:
        winner = None
    if winner not in present:
        return cfg
    cfg = copy.deepcopy(cfg)
    for key in present:
        if key != winner:
            cfg.default_hooks.distill_stage.pop(key)
    return cfg


def prepare_config(cfg):
    """What kdzoo's Runner does to a config before mmengine builds from it (train, test and
    sweeps): default hooks set to None removed (:func:`drop_none_hooks`), one stage
    switch (:func:`resolve_stage_switch`) and the precision resolved
    (:func:`kdzoo.numerics.apply_precision`). Returns ``cfg``, or a changed copy."""
    from kdzoo.numerics import apply_precision
    cfg = resolve_stage_switch(cfg)
    apply_precision(cfg)
    hooks = cfg.get('default_hooks')
    kept = drop_none_hooks(hooks)
    if isinstance(hooks, dict) and len(kept) != len(hooks):
        cfg = copy.deepcopy(cfg)
        cfg['default_hooks'] = drop_none_hooks(cfg['default_hooks'])
    return resolve_record_path(add_teacher_views(wrap_replay_dataset(cfg)))


def uses_replay(loader_cfg):
    """Whether a data loader config draws its samples through a ReplaySampler."""
    sampler = (loader_cfg or {}).get('sampler') or {}
    return isinstance(sampler, dict) and str(sampler.get('type', '')).split('.')[-1] in (
        'ReplaySampler',)


def wrap_replay_dataset(cfg):
    """The training dataset wrapped in a ReplayDataset when its sampler is a
    ReplaySampler (kdzoo.datasets.replay), so that configs and their children keep
    writing the dataset itself (``train_dataloader.dataset.subset_ratio``)."""
    loader = cfg.get('train_dataloader')
    if not isinstance(loader, dict) or not uses_replay(loader):
        return cfg
    if ((cfg.get('randomness') or {}).get('diff_rank_seed')
            and loader['sampler'].get('data_seed') is None):
        # mmengine then gives the sampler no seed, and every run would draw data seed 0.
        raise ValueError('randomness.diff_rank_seed=True gives ReplaySampler no run seed to '
                         'draw the data stream from; set train_dataloader.sampler.data_seed '
                         'to an integer (every process must share it)')
    check_pair_batch(cfg)
    dataset = loader.get('dataset')
    if not isinstance(dataset, dict) or dataset.get('type') in ('ReplayDataset',
                                                               'kdzoo.ReplayDataset'):
        return cfg
    cfg = copy.deepcopy(cfg)
    cfg['train_dataloader']['dataset'] = dict(type='ReplayDataset',
                                              dataset=cfg['train_dataloader']['dataset'])
    return cfg


def teacher_views(model):
    """{teacher network: view} of the teachers of a model config that ask for a view."""
    model = model or {}
    found = {}
    teacher = model.get('teacher')
    if isinstance(teacher, dict) and teacher.get('view') is not None:
        found['teacher'] = teacher['view']
    for name, cfg in (model.get('teachers') or {}).items():
        if isinstance(cfg, dict) and cfg.get('view') is not None:
            found[f'teachers.{name}'] = cfg['view']
    return found


def add_teacher_views(cfg):
    """The views that the model's teachers ask for, made by the training set's
    ReplayDataset (:mod:`kdzoo.datasets.views`); refused without the replayable data path,
    which alone draws a sample's views together."""
    views = teacher_views(cfg.get('model'))
    if not views:
        return cfg
    loader = cfg.get('train_dataloader')
    pre = str(((cfg.get('model') or {}).get('data_preprocessor') or
               cfg.get('data_preprocessor') or {}).get('type', ''))
    if not isinstance(loader, dict) or not uses_replay(loader) or \
            pre.split('.')[-1] != 'ReplayClsDataPreprocessor':
        raise ValueError(f'teachers {sorted(views)} ask for their own views, which the '
                         "replayable data path makes: set train_dataloader.sampler=dict(type="
                         "'ReplaySampler') and data_preprocessor=dict(type="
                         "'ReplayClsDataPreprocessor', ...)")
    cfg = copy.deepcopy(cfg)
    cfg['train_dataloader']['dataset']['views'] = views
    return cfg


def resolve_record_path(cfg):
    """``model.teacher_outputs`` (a path, or ``{network: path}``) with ``{data_seed}``
    replaced by the run's data seed (the sampler's ``data_seed``, else
    ``randomness.seed``), so that one setting serves a sweep over seeds whose records are
    kept one per data seed."""
    model = cfg.get('model')
    outputs = model.get('teacher_outputs') if isinstance(model, dict) else None
    paths = dict(outputs) if isinstance(outputs, dict) else {None: outputs}
    if not any(isinstance(p, str) and '{' in p for p in paths.values()):
        return cfg
    from kdzoo.records.fingerprint import data_seed_of
    resolved = {}
    for key, path in paths.items():
        try:
            resolved[key] = (path.format(data_seed=data_seed_of(cfg)) if isinstance(path, str)
                             else path)
        except (KeyError, IndexError, ValueError) as error:
            where = 'model.teacher_outputs' + ('' if key is None else f'[{key!r}]')
            raise ValueError(f'{where}={path!r}: the only field it may name is '
                             '{data_seed}') from error
    cfg = copy.deepcopy(cfg)
    cfg['model']['teacher_outputs'] = resolved if isinstance(outputs, dict) else resolved[None]
    return cfg


def check_pair_batch(cfg):
    """Per-pair mixing (ReplayClsDataPreprocessor, mix_mode='pair') mixes the two samples
    of each pair of the epoch's order within one batch: an odd per-process batch would
    split pairs, which is refused here, before anything is built."""
    model = cfg.get('model') if isinstance(cfg.get('model'), dict) else {}
    pre = model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    if (str(pre.get('type', '')).split('.')[-1] != 'ReplayClsDataPreprocessor'
            or not pre.get('batch_augments') or pre.get('mix_mode', 'pair') != 'pair'):
        return
    batch = cfg['train_dataloader'].get('batch_size')
    if isinstance(batch, int) and batch % 2:
        raise ValueError(f"train_dataloader.batch_size={batch}: mixup/cutmix per pair "
                         "(data_preprocessor.mix_mode='pair') needs an even batch per "
                         f'process; use {batch + 1} or {batch - 1}')
