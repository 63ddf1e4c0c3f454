"""Recording intermediate outputs (or inputs) of a network by module name, with hooks.

Used by the Distiller's layer sources (e.g. DearKD, Chen et al. CVPR 2022: a CNN
teacher's intermediate feature maps and a student's intermediate tokens) to read them from
the forward passes that compute the logits, so no network runs twice.
"""
import difflib
from contextlib import contextmanager

import torch


def check_layer_names(module, names, owner='model'):
    """Raise a ValueError listing the available module names if any of ``names`` is not a
    submodule of ``module`` (names as in ``module.named_modules()``)."""
    available = [n for n, _ in module.named_modules() if n]
    missing = [n for n in names if n not in set(available)]
    if missing:
        hints = {n: difflib.get_close_matches(n, available, n=3) for n in missing}
        hint = '; '.join(f'{n!r}: did you mean {h}?' for n, h in hints.items() if h)
        raise ValueError(
            f'{owner} has no layer named {missing}' + (f' ({hint})' if hint else '') +
            f'. Available layer names of the {owner} ({type(module).__name__}): '
            + ', '.join(available))


class FeatureRecorder:
    """Keeps the outputs of the named submodules of ``module`` while recording is on.

    Recording is off by default so that evaluation and plain forwards keep no tensors
    alive; turn it on around a forward with :meth:`recording`, optionally for a subset of
    the names (the layers that the active distillation terms read). Names are checked
    when the recorder is made (at model build time, before any training step).

    Args:
        module: the network to record from.
        names: submodule names, as listed by ``module.named_modules()``; ``NAME:input``
            records the first positional input of NAME instead of its output.
        owner: what the network is ('teacher', 'student'), for error messages.
        detach: record detached outputs (for a frozen teacher).
    """

    def __init__(self, module, names, owner='model', detach=False):
        names = list(dict.fromkeys(names))
        check_layer_names(module, [n.split(':')[0] for n in names], owner)
        self.names = names
        self.owner = owner
        self.detach = detach
        self.active = False
        self.wanted = set(names)
        self.outputs = {}
        modules = dict(module.named_modules())
        self._handles = []
        for n in names:
            layer, _, port = n.partition(':')
            if port == 'input':
                handle = modules[layer].register_forward_pre_hook(self._input_hook(n))
            else:
                handle = modules[layer].register_forward_hook(self._output_hook(n))
            self._handles.append(handle)

    def _keep(self, name, value, what):
        if not self.active or name not in self.wanted:
            return
        if not isinstance(value, torch.Tensor):
            raise TypeError(f'{self.owner} layer {name!r} {what} {type(value).__name__}, not '
                            'a tensor; record a layer whose output (or input) is a tensor')
        self.outputs[name] = value.detach() if self.detach else value

    def _output_hook(self, name):
        def hook(module, inputs, output):
            self._keep(name, output, 'returns')
        return hook

    def _input_hook(self, name):
        def hook(module, inputs):
            self._keep(name, inputs[0] if inputs else None, 'takes')
        return hook

    @contextmanager
    def recording(self, names=None):
        """Record ``names`` (default: all) during the ``with`` block; the outputs stay in
        :attr:`outputs` after it until the next recording starts."""
        self.outputs = {}
        self.wanted = set(self.names if names is None else names)
        self.active = True
        try:
            yield self.outputs
        finally:
            self.active = False

    def get(self, name):
        """The output of ``name`` in the last recorded forward."""
        if name not in self.outputs:
            raise RuntimeError(f'{self.owner} layer {name!r} produced no output in the last '
                               'recorded forward (is it used by the forward pass?)')
        return self.outputs[name]

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []
