"""Checks of a config's top-level keys against what reads them.

mmengine's ``Config.merge_from_dict`` accepts any key, so ``--cfg-options max_epoch=3``
(for ``train_cfg.max_epochs``) adds a top-level key that nothing reads and the run goes on
with the configured schedule. :func:`unread_options` names such keys, with the closest key
that is read (at the top level or nested, e.g. ``train_cfg.max_epochs``).
"""
import difflib
import inspect

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
