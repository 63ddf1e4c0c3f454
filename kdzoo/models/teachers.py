"""Several teachers in one Distiller: ``model.teachers=dict(NAME=dict(type='Teacher', ...))``.

Beside the one ``model.teacher`` (read as ``teacher.logits``, ``teacher.layer3``), each named
teacher is read as ``teachers.NAME.logits`` and ``teachers.NAME.<module>[:input]``
(:mod:`kdzoo.models.sources`). Every teacher keeps its own normalisation, resolution, dtype
and memory format (:class:`~kdzoo.models.teacher.Teacher`), runs at most once per step and
only when an active term reads one of its sources, is frozen, and is left out of
checkpoints, of the optimizer and of DDP's synchronisation. Validation reports each one's
accuracy as ``teacher/NAME/top1``.

An ensemble is a loss over several teachers' sources bound as a list
(``inputs=dict(teacher_logits=['teachers.a.logits', 'teachers.b.logits'])``), e.g.
:class:`~kdzoo.losses.EnsembleKDLoss`.
"""
import torch

from kdzoo.registry import MODELS
from .sources import NAMED_TEACHERS

#: The Distiller's children that hold frozen teachers (never saved, optimised or synced).
TEACHER_CHILDREN = ('teacher', 'teachers')


def build_teachers(teachers, skip=()):
    """{name: Teacher} built from ``model.teachers`` (but the names in ``skip``: read from
    a record alone); each under its own random generator, so that adding a teacher
    changes no other random draw of the run."""
    built = {}
    for name, cfg in teacher_configs(teachers).items():
        if name in skip:
            continue
        with torch.random.fork_rng(devices=[]):
            built[name] = MODELS.build(cfg)
    return built


def teacher_configs(teachers):
    """{name: config} of ``model.teachers``, checked (a name set to None is dropped: a
    child config removes an inherited teacher)."""
    if teachers is None:
        return {}
    if not isinstance(teachers, dict):
        raise ValueError(f'model.teachers must be a dict of NAME=dict(type=\'Teacher\', ...), '
                         f'got {type(teachers).__name__}')
    for name in teachers:
        if not (isinstance(name, str) and name.isidentifier()) or name == 'teacher':
            raise ValueError(f'model.teachers: the teacher name {name!r} must be a Python '
                             f'identifier other than \'teacher\' (it is read as '
                             f'{NAMED_TEACHERS}.<name>.logits and reported as '
                             'teacher/<name>/top1)')
    return {name: cfg for name, cfg in teachers.items() if cfg is not None}


def built_from_record(network, recorded, layers, logger=None):
    """Whether the teacher network of source ``network`` is built although a record
    (``recorded``) gives its logits: only when terms read its ``layers`` or the record is
    verified against it (``verify_every``). Logs the decision."""
    from mmengine.logging import MMLogger
    logger = logger or MMLogger.get_current_instance()
    if layers or recorded.verify_every:
        why = (f'terms read its layers {layers}' if layers
               else f'verify_every={recorded.verify_every}')
        logger.info(f'{network} logits read from {recorded.describe()}; the teacher network '
                    f'is built too: {why}')
        return True
    logger.info(f'{network} logits read from {recorded.describe()}; the teacher network is '
                'not built or loaded (no term reads its layers, verify_every=0)')
    return False


def network_of(name):
    """The source network of the named teacher ``name``: ``teachers.<name>``."""
    return f'{NAMED_TEACHERS}.{name}'


def name_of(network):
    """The teacher name of a ``teachers.<name>`` network."""
    return network[len(NAMED_TEACHERS) + 1:]


def check_named_teacher(source, teachers, where):
    """Raise a ValueError when ``source`` reads a named teacher that ``teachers`` (the
    names of ``model.teachers``) lacks."""
    name = name_of(source.network)
    if name not in teachers:
        known = ', '.join(sorted(teachers)) or 'none (model.teachers is not set)'
        raise ValueError(f'{where} reads {source.text!r}, but there is no teacher named '
                         f'{name!r}; the named teachers are: {known}')


def check_class_counts(terms, class_count, num_classes):
    """Every teacher whose logits a term reads predicts the student's classes; a term that
    reads the logits of several teachers is refused when they disagree, naming them.
    ``class_count(network)``: the class count of a named teacher (network or record)."""
    for name, term in terms.items():
        read = sorted({s.network for s in term.sources
                       if s.network is not None and s.text == f'{s.network}.logits'
                       and s.network.startswith(NAMED_TEACHERS + '.')})
        counts = {network: class_count(network) for network in read}
        if len(set(counts.values())) > 1:
            listed = ', '.join(f'{n} {c}' for n, c in counts.items())
            raise ValueError(f'distillation term {name!r} reads the logits of teachers with '
                             f'different class counts ({listed}); a logit term needs one '
                             'class count: give the teachers the same num_classes')
        for network, count in counts.items():
            if count != num_classes:
                raise ValueError(f'{network} predicts {count} classes but the student '
                                 f'{num_classes}; set num_classes of both to the same value')


def check_views(teachers):
    """Refuse, at build time, a view size that a teacher cannot take. (A teacher read
    from a record was recorded on its view: :mod:`kdzoo.apis.record_teacher`.)"""
    for teacher in teachers.values():
        if getattr(teacher, 'view', None) is not None:
            teacher.check_takes(teacher.view[0])


def teacher_input(network, teacher, inputs, views):
    """What ``teacher`` (of source network ``network``) sees in training: its view of the
    batch (``views[network]``), or the student's batch."""
    if getattr(teacher, 'view_spec', None) is None:
        return inputs
    if not views or network not in views:
        raise ValueError(
            f'{network} sees its own view of the training samples, and this batch carries '
            "none: the training set must go through ReplaySampler with a "
            "ReplayClsDataPreprocessor (kdzoo's Runner then makes the views)")
    return views[network]


def comparable(teacher, num_classes, size):
    """Whether ``teacher``'s accuracy is worth reporting on the student's labels: trained
    weights (not a random initialisation, e.g. for a speed test) and the student's class
    count. Decided once per teacher."""
    if getattr(teacher, '_comparable', None) is None:
        teacher._comparable = (getattr(teacher, 'has_weights', False)
                               and teacher.num_classes(size=size) == num_classes)
    return teacher._comparable


def true_class_ranks(logits, labels):
    """The number of classes each sample's teacher scores strictly above its true class:
    top-k correct iff rank < k."""
    return (logits > logits.gather(1, labels[:, None])).sum(1)


def sample_key(sample):
    """A sample's evaluation input: image path and shape (None without a path: its
    teacher rank is then computed every time)."""
    path = sample.metainfo.get('img_path')
    return None if path is None else (path, tuple(sample.metainfo.get('img_shape', ())))


def set_ranks(samples, logits_of, cache, field):
    """Set ``field`` of each sample to the rank of its true class among a teacher's logits
    (``logits_of(indices)``: the logits of those samples), from ``cache`` (sample key ->
    rank) where known: a frozen teacher on a deterministic evaluation pipeline runs once
    per image."""
    keys = [sample_key(s) for s in samples]
    todo = [i for i, k in enumerate(keys) if k is None or k not in cache]
    ranks = [cache.get(k) for k in keys]
    if todo:
        logits = logits_of(todo)
        labels = torch.cat([samples[i].gt_label for i in todo]).to(logits.device)
        for i, rank in zip(todo, true_class_ranks(logits, labels).tolist()):
            ranks[i] = rank
            if keys[i] is not None:
                cache[keys[i]] = rank
    for sample, rank in zip(samples, ranks):
        sample.set_field(torch.tensor(rank), field, field_type='data')
    return samples


def drop_teacher_keys(state_dict, prefix):
    """Remove every teacher's entries (``teacher.*``, ``teachers.*``) from ``state_dict``."""
    for key in [k for k in state_dict
                if any(k.startswith(f'{prefix}{child}.') for child in TEACHER_CHILDREN)]:
        del state_dict[key]
