"""One named distillation term: a registered loss whose arguments are bound to sources.

A term is configured as::

    dict(loss=dict(type='HiddenMSELoss'),           # any registered module
         inputs=dict(student_features='student.blocks.7',
                     teacher_features='teacher.s3'),  # argument name -> source(s)
         connectors=dict(student_features=dict(type='Aligner')),  # optional, per argument
         weight=1.0,                                  # its factor in the total loss
         mix=False)                                   # True: DeiT's alpha, see Distiller

An argument bound to a list of sources (``student_features=['student.layer1',
'student.layer2']``) receives the list of their tensors, in that order: methods that read
several layers at once (ReviewKD's fusion across levels, ViTKD's shallow and deep layers)
or several teachers are one loss. A connector on such an argument receives the list too.

Arguments not named in ``inputs`` are bound by their name when it is one of
:data:`kdzoo.models.sources.DEFAULT_BINDINGS`. Everything is checked when the model is
built, against the loss's ``forward`` signature.
"""
import inspect

import torch.nn as nn

from kdzoo.registry import MODELS
from .sources import DEFAULT_BINDINGS, VOCABULARY, parse_source

TERM_KEYS = ('loss', 'inputs', 'connectors', 'weight', 'mix')


def forward_parameters(module):
    """(parameters of ``module.forward`` without self, whether it takes **kwargs)."""
    params = list(inspect.signature(module.forward).parameters.values())
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named, var_kw


def as_sources(value):
    """The sources of one binding: a tuple of one :class:`Source`, or of a list's."""
    return tuple(value) if isinstance(value, tuple) else (value,)


def flat_sources(bindings):
    """Every source of ``bindings`` ({argument: Source or tuple of Sources}), in order."""
    return [s for value in bindings.values() for s in as_sources(value)]


def parse_binding(value, where):
    """A Source for a source string, a tuple of Sources for a non-empty list of them."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f'{where}: an empty list of sources; give one source or a list '
                             f'of them, each one of {VOCABULARY}')
        return tuple(parse_source(v, f'{where}[{i}]') for i, v in enumerate(value))
    return parse_source(value, where)


def bind_arguments(name, loss, inputs, positional=()):
    """{argument: Source, or a tuple of Sources for a list} for the loss of term ``name``.

    ``inputs`` are the config's bindings; unbound arguments take their default binding
    by name, else (for the DeiT shorthand) the sources in ``positional``, in order.
    """
    where = f'distillation term {name!r} ({type(loss).__name__})'
    params, var_kw = forward_parameters(loss)
    names = [p.name for p in params]
    unknown = [a for a in inputs if a not in names]
    if unknown and not var_kw:
        raise ValueError(f'{where}: inputs {unknown} are not arguments of its forward; its '
                         f'arguments are {names}')
    bound = {a: parse_binding(s, f'{where}, input {a!r}') for a, s in inputs.items()}
    spare = list(positional)
    for p in params:
        if p.name in bound:
            continue
        if p.name in DEFAULT_BINDINGS:
            bound[p.name] = parse_source(DEFAULT_BINDINGS[p.name])
        elif p.default is p.empty and spare:
            bound[p.name] = parse_source(spare.pop(0))
    missing = [p.name for p in params if p.default is p.empty and p.name not in bound]
    if missing:
        raise ValueError(f'{where}: arguments {missing} are not bound; bind them with '
                         f'inputs=dict({missing[0]}=SOURCE), SOURCE one of {VOCABULARY}')
    return bound


def counterpart(bindings, argument):
    """The binding of layers on the other network than ``argument``'s, in a term's
    ``bindings`` (None unless exactly one argument is bound to such layers): what a
    connector on ``argument`` is sized and resized to. For an argument bound to a list,
    the counterpart is an argument bound to a list of the same length."""
    own = bindings[argument]
    network = as_sources(own)[0].network
    others = [v for a, v in bindings.items() if a != argument
              and all(s.is_layer and s.network != network for s in as_sources(v))
              and isinstance(v, tuple) == isinstance(own, tuple)]
    if len(others) != 1:
        return None
    if isinstance(own, tuple) and len(others[0]) != len(own):
        return None
    return others[0]


def takes_argument(module, argument):
    params, _ = forward_parameters(module)
    return any(p.name == argument for p in params)


class DistillTerm(nn.Module):
    """A built term: ``weight * loss(**{arg: connector(source)})``.

    Attributes:
        loss: the loss module.
        bindings: {argument: :class:`~kdzoo.models.sources.Source`}.
        connectors: ``nn.ModuleDict`` {argument: connector}, applied to that argument's
            source before the loss; a connector whose forward takes ``size`` is given the
            spatial size of the term's layer source on the other network.
        weight, mix: as configured.
    """

    def __init__(self, name, loss, bindings, connectors, weight=1.0, mix=False):
        super().__init__()
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f'distillation term {name!r}: weight must be a number >= 0, '
                             f'got {weight!r}')
        self.name = name
        self.loss = loss
        self.bindings = bindings
        self.connectors = nn.ModuleDict(connectors)
        self.weight = float(weight)
        self.mix = bool(mix)
        # Decided once: which connectors are given the other layer's spatial size.
        self._size_of = {}
        for argument, connector in connectors.items():
            other = counterpart(bindings, argument)
            if other is not None and takes_argument(connector, 'size'):
                self._size_of[argument] = other

    @property
    def sources(self):
        return set(flat_sources(self.bindings))

    def reads(self, *texts):
        return any(s.text in texts for s in flat_sources(self.bindings))

    def forward(self, lookup):
        """The unweighted term; ``lookup(source)`` returns a source's tensor (a list of
        them for an argument bound to a list)."""
        def fetch(value):
            if isinstance(value, tuple):
                return [lookup(s) for s in value]
            return lookup(value)

        kwargs = {}
        for argument, bound in self.bindings.items():
            value = fetch(bound)
            if argument in self.connectors:
                other = self._size_of.get(argument)
                if other is None:
                    value = self.connectors[argument](value)
                else:
                    size = ([t.shape[-2:] for t in fetch(other)] if isinstance(other, tuple)
                            else fetch(other).shape[-2:])
                    value = self.connectors[argument](value, size=size)
            kwargs[argument] = value
        return self.loss(**kwargs)


def check_term_keys(name, cfg):
    unknown = set(cfg) - set(TERM_KEYS)
    if unknown or 'loss' not in cfg:
        raise ValueError(f'distillation term {name!r}: unknown keys {sorted(unknown)}'
                         f'{"" if "loss" in cfg else ", no loss"}; a term has the keys '
                         f'{TERM_KEYS} (loss required)')
    if not name.isidentifier() or name == 'cls':
        raise ValueError(f'distillation term name {name!r} must be a Python identifier other '
                         "than 'cls' (logged as loss_<name>; loss_cls is the base criterion)")


def build_loss(name, cfg):
    loss = MODELS.build(cfg) if isinstance(cfg, dict) else cfg
    if not isinstance(loss, nn.Module):
        raise TypeError(f'distillation term {name!r}: its loss must build an nn.Module, got '
                        f'{type(loss).__name__}')
    return loss
