"""The vocabulary of what a distillation term can read.

A term's loss arguments are bound by name to *sources*, written as strings in the config:

=======================  ==============================================================
``student.logits``       the head that distils: the distillation head of a student with a
                         distillation token (DeiT), else its class head
``student.cls_logits``   the student's class head
``student.dist_logits``  the student's distillation head (only for students that have one)
``teacher.logits``       the teacher's logits (float32, on the student's batch)
``labels``               the true class indices (N,), also after mixup/cutmix
``targets``              the mixed soft targets (N, K) made by mixup/cutmix, else the labels
``indices``              the samples' indices in the training dataset (N,), int64 (for
                         losses that keep per-sample state, e.g. CRD's memory bank); a
                         mixed image carries the index of the sample it was mixed into
``student.NAME``         the output of the student's submodule NAME (``named_modules()``)
``teacher.NAME``         the output of the teacher network's submodule NAME
``student.NAME:input``   the (first positional) input of that submodule; also ``teacher.``
``teachers.T.logits``    the logits of the teacher named T (``model.teachers=dict(T=...)``);
                         ``teachers.T.NAME`` and ``teachers.T.NAME:input`` its layers
=======================  ==============================================================

A loss argument may be bound to a list of sources; it then receives the list of their
tensors (:mod:`kdzoo.models.distill_term`).

Loss arguments with one of the names in :data:`DEFAULT_BINDINGS` are bound without being
named in the config (``student_logits``, ``teacher_logits``, ``labels``, ...).
"""
import difflib
from dataclasses import dataclass

NETWORKS = ('student', 'teacher')
HEADS = {
    'student.logits': 'the distilling head (distillation head, else class head)',
    'student.cls_logits': 'the class head',
    'student.dist_logits': 'the distillation head',
    'teacher.logits': "the teacher's logits",
    'labels': 'true class indices (N,)',
    'targets': 'mixed soft targets (N, K), else the labels',
    'indices': "the samples' indices in the training dataset (N,)",
}
#: Loss argument names bound to a source when the config does not bind them.
DEFAULT_BINDINGS = {
    'student_logits': 'student.logits',
    'teacher_logits': 'teacher.logits',
    'cls_logits': 'student.cls_logits',
    'dist_logits': 'student.dist_logits',
    'labels': 'labels',
    'targets': 'targets',
    'indices': 'indices',
}
PORTS = ('output', 'input')
VOCABULARY = (', '.join(HEADS) + ', student.<module>, teacher.<module>, '
              'student.<module>:input, teacher.<module>:input, teachers.<name>.logits, '
              'teachers.<name>.<module>')
#: The prefix of the sources of named teachers: ``teachers.<name>.``.
NAMED_TEACHERS = 'teachers'


def is_teacher(network):
    """Whether ``network`` (a :class:`Source`'s) is a teacher: 'teacher' or 'teachers.T'."""
    return network == 'teacher' or (network or '').startswith(NAMED_TEACHERS + '.')


@dataclass(frozen=True)
class Source:
    """One parsed source string.

    ``network`` is 'student', 'teacher' or None (labels, targets); ``module`` is the
    submodule name for a layer source, else None; ``port`` is 'output' or 'input'.
    """
    text: str
    network: object = None
    module: object = None
    port: str = 'output'

    @property
    def is_layer(self):
        return self.module is not None

    @property
    def record_key(self):
        """The key of a layer source in its network's recorder."""
        return self.module if self.port == 'output' else f'{self.module}:{self.port}'


def parse_source(text, where='a source'):
    """Parse ``text`` into a :class:`Source`; raise a ValueError naming ``where`` and the
    vocabulary when it is not one."""
    if not isinstance(text, str):
        raise ValueError(f'{where}: {text!r} is not a source string; sources are '
                         f'{VOCABULARY}')
    if text in HEADS:
        network = text.split('.')[0] if '.' in text else None
        return Source(text, network=network, port='output')
    if text.startswith(NAMED_TEACHERS + '.'):
        return _parse_named_teacher(text, where)
    network, _, rest = text.partition('.')
    if network not in NETWORKS or not rest:
        raise ValueError(f'{where}: unknown source {text!r}{did_you_mean(text)}; sources '
                         f'are {VOCABULARY}')
    module, _, port = rest.partition(':')
    port = port or 'output'
    if port not in PORTS:
        raise ValueError(f'{where}: {text!r} reads the port {port!r} of {module!r}; a layer '
                         f'source reads one of {PORTS} (write {network}.{module} for the '
                         f'output, {network}.{module}:input for the input)')
    return Source(text, network=network, module=module, port=port)


def _parse_named_teacher(text, where):
    name, _, rest = text[len(NAMED_TEACHERS) + 1:].partition('.')
    if not name.isidentifier() or not rest:
        raise ValueError(f'{where}: {text!r} does not name a teacher and what to read of it; '
                         f'write {NAMED_TEACHERS}.<name>.logits or {NAMED_TEACHERS}.<name>.'
                         '<module> with <name> a key of model.teachers')
    network = f'{NAMED_TEACHERS}.{name}'
    if rest == 'logits':
        return Source(text, network=network, port='output')
    module, _, port = rest.partition(':')
    port = port or 'output'
    if port not in PORTS:
        raise ValueError(f'{where}: {text!r} reads the port {port!r} of {module!r}; a layer '
                         f'source reads one of {PORTS}')
    return Source(text, network=network, module=module, port=port)


def closest_sources(text, network=None, modules=()):
    """The valid source names closest to ``text`` (up to 3), from the fixed names of
    :data:`HEADS` and, for a layer source of ``network`` with submodules ``modules``,
    its ``network.module`` names. Names of one network are compared without their
    ``network.`` prefix, which every candidate would share."""
    if network is None:
        return difflib.get_close_matches(text, list(HEADS), n=3, cutoff=0.6)
    name = text.split(':')[0][len(network) + 1:]
    short = {}
    for head in HEADS:
        short.setdefault(head[len(network) + 1:] if head.startswith(network + '.') else head,
                         head)
    if network.startswith(NAMED_TEACHERS + '.'):
        short.setdefault('logits', f'{network}.logits')
    for module in modules:
        short.setdefault(module, f'{network}.{module}')
    return [short[c] for c in difflib.get_close_matches(name, list(short), n=3, cutoff=0.6)]


def did_you_mean(text, network=None, modules=(), port='output'):
    """`` (did you mean 'X'?)`` with :func:`closest_sources`, or ``''``; layer names
    get ``:input`` for ``port='input'``."""
    close = [c if c in HEADS or port == 'output' else f'{c}:{port}'
             for c in closest_sources(text, network, modules)]
    return f' (did you mean {" or ".join(repr(c) for c in close)}?)' if close else ''


def check_layer_source(source, network, where='a source'):
    """Raise a ValueError when the layer source ``source`` names no submodule of
    ``network`` (the student, or the teacher's network), with the closest valid source
    names: a near miss of a fixed name (``teacher.logit`` for ``teacher.logits``) reads as
    a layer name until the network is known, so the fixed names are suggested with the
    layers."""
    modules = [n for n, _ in network.named_modules() if n]
    if source.module in modules:
        return
    hint = did_you_mean(source.text, source.network, modules, source.port)
    raise ValueError(
        f'{where}: {source.network} has no layer named {source.module!r}{hint}. Sources are '
        f'{VOCABULARY}; layers of the {source.network} ({type(network).__name__}): '
        + ', '.join(modules))
