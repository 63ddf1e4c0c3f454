"""The settings of a DF-DearKD synthesis run (tools/synthesize.py), from a config's
``synthesis`` section, checked before any work starts."""
import copy
import os.path as osp

from .model import ConfigError

SYNTHESIS_KEYS = ('teacher', 'synthesizer', 'out', 'num_images', 'batch_size',
                  'per_class_in_batch', 'seed', 'classes', 'grid')


def _get(cfg, dotted):
    for key in dotted.split('.'):
        if not hasattr(cfg, 'get') or cfg.get(key) is None:
            return None
        cfg = cfg[key]
    return cfg


def class_names(cfg, syn, num_classes):
    """synthesis.classes, the config's ``classes``, the train set's classes, or
    class_000 ... (zero-padded, so sorting keeps the label order)."""
    for names in (syn.get('classes'), cfg.get('classes'),
                  _get(cfg, 'train_dataloader.dataset.metainfo.classes'),
                  _get(cfg, 'train_dataloader.dataset.classes')):
        if names is not None:
            names = list(names)
            if len(names) != num_classes:
                raise ConfigError(f'{len(names)} class names for a teacher with '
                                  f'{num_classes} classes')
            return names
    width = max(3, len(str(num_classes - 1)))
    return [f'class_{i:0{width}d}' for i in range(num_classes)]


def input_normalisation(cfg, teacher_cfg, syn_cfg):
    """Mean and std of the teacher's input: the synthesizer's, the teacher's, else the
    data preprocessor's (the Teacher then feeds the network with the student's)."""
    for source in (syn_cfg, teacher_cfg, cfg.get('data_preprocessor'),
                   _get(cfg, 'model.data_preprocessor')):
        if source and source.get('mean') is not None and source.get('std') is not None:
            return list(source['mean']), list(source['std'])
    raise ConfigError('no input normalisation found: set synthesis.synthesizer.mean/std')


def synthesis_settings(cfg, config_name, out=None, num_images=None, work_dir=None):
    """Every setting of a synthesis run: teacher, synthesizer, image count, batch, class
    grouping, work dir and output folder; raises :class:`ConfigError` on a bad one."""
    from kdzoo.models.checkpoint import resolve_checkpoint
    from kdzoo.synthesis import check_stages

    syn = cfg.get('synthesis')
    if not syn:
        raise ConfigError(f'{config_name} has no synthesis section')
    syn = copy.deepcopy(syn.to_dict() if hasattr(syn, 'to_dict') else dict(syn))
    unknown = set(syn) - set(SYNTHESIS_KEYS)
    if unknown:
        raise ConfigError(f'unknown synthesis keys {sorted(unknown)}; allowed: {SYNTHESIS_KEYS}')
    teacher = syn.get('teacher') or _get(cfg, 'model.teacher')
    if teacher is None:
        raise ConfigError('no teacher: set synthesis.teacher or model.teacher')
    teacher = copy.deepcopy(dict(teacher))
    if teacher.get('checkpoint') is None:
        raise ConfigError('the synthesis teacher has no checkpoint; synthesis needs a trained '
                          'teacher')
    try:
        teacher['checkpoint'] = resolve_checkpoint(teacher['checkpoint'])
    except FileNotFoundError as e:
        raise ConfigError(f'teacher checkpoint: {e}') from None
    num_images = num_images if num_images is not None else syn.get('num_images')
    batch_size = syn.get('batch_size', 64)
    group = syn.get('per_class_in_batch', 1)
    for name, value in (('num_images', num_images), ('batch_size', batch_size),
                        ('per_class_in_batch', group)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f'{name} must be a positive integer, got {value!r}')
    synthesizer = dict(syn.get('synthesizer') or {})
    if 'type' not in synthesizer:
        raise ConfigError('synthesis.synthesizer needs a type (e.g. DeepInversionSynthesizer)')
    try:
        check_stages(synthesizer.get('stages'))
    except ValueError as e:
        raise ConfigError(f'synthesis.synthesizer.stages: {e}') from None
    synthesizer['mean'], synthesizer['std'] = input_normalisation(cfg, teacher, synthesizer)
    synthesizer['seed'] = syn.get('seed', synthesizer.get('seed', 0))
    work_dir = work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(config_name))[0])
    out = out or syn.get('out') or osp.join(work_dir, 'synthetic')
    return dict(teacher=teacher, synthesizer=synthesizer, num_images=num_images,
                batch_size=batch_size, per_class_in_batch=group, work_dir=work_dir, out=out,
                grid=dict(syn.get('grid') or {}), syn=syn)
