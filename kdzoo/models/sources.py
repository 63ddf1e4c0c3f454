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
``student.NAME``         the output of the student's submodule NAME (``named_modules()``)
``teacher.NAME``         the output of the teacher network's submodule NAME
``student.NAME:input``   the (first positional) input of that submodule; also ``teacher.``
=======================  ==============================================================

Loss arguments with one of the names in :data:`DEFAULT_BINDINGS` are bound without being
named in the config (``student_logits``, ``teacher_logits``, ``labels``, ...).
"""
from dataclasses import dataclass

NETWORKS = ('student', 'teacher')
HEADS = {
    'student.logits': 'the distilling head (distillation head, else class head)',
    'student.cls_logits': 'the class head',
    'student.dist_logits': 'the distillation head',
    'teacher.logits': "the teacher's logits",
    'labels': 'true class indices (N,)',
    'targets': 'mixed soft targets (N, K), else the labels',
}
#: Loss argument names bound to a source when the config does not bind them.
DEFAULT_BINDINGS = {
    'student_logits': 'student.logits',
    'teacher_logits': 'teacher.logits',
    'cls_logits': 'student.cls_logits',
    'dist_logits': 'student.dist_logits',
    'labels': 'labels',
    'targets': 'targets',
}
PORTS = ('output', 'input')
VOCABULARY = (', '.join(HEADS) + ', student.<module>, teacher.<module>, '
              'student.<module>:input, teacher.<module>:input')


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
    network, _, rest = text.partition('.')
    if network not in NETWORKS or not rest:
        raise ValueError(f'{where}: unknown source {text!r}; sources are {VOCABULARY}')
    module, _, port = rest.partition(':')
    port = port or 'output'
    if port not in PORTS:
        raise ValueError(f'{where}: {text!r} reads the port {port!r} of {module!r}; a layer '
                         f'source reads one of {PORTS} (write {network}.{module} for the '
                         f'output, {network}.{module}:input for the input)')
    return Source(text, network=network, module=module, port=port)
