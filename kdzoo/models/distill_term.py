"""One named distillation term: a registered loss whose arguments are bound to sources.

A term is configured as::

    dict(loss=dict(type='HiddenMSELoss'),           # any registered module
         inputs=dict(student_features='student.blocks.7',
                     teacher_features='teacher.s3'),  # argument name -> source
         connectors=dict(student_features=dict(type='Aligner')),  # optional, per argument
         weight=1.0,                                  # its factor in the total loss
         mix=False)                                   # True: DeiT's alpha, see Distiller

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


def bind_arguments(name, loss, inputs, positional=()):
    """{argument: Source} for the loss of term ``name``.

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
    bound = {a: parse_source(s, f'{where}, input {a!r}') for a, s in inputs.items()}
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
    """The layer source on the other network than ``argument``'s, in a term's
    ``bindings`` (None unless there is exactly one): what a connector on ``argument`` is
    sized and resized to."""
    own = bindings[argument].network
    others = [s for a, s in bindings.items()
              if a != argument and s.is_layer and s.network != own]
    return others[0] if len(others) == 1 else None


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
        return set(self.bindings.values())

    def reads(self, *texts):
        return any(s.text in texts for s in self.bindings.values())

    def forward(self, lookup):
        """The unweighted term; ``lookup(source)`` returns a source's tensor."""
        kwargs = {}
        for argument, source in self.bindings.items():
            value = lookup(source)
            if argument in self.connectors:
                other = self._size_of.get(argument)
                value = (self.connectors[argument](value) if other is None else
                         self.connectors[argument](value, size=lookup(other).shape[-2:]))
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
