"""Validation and test loops under bf16 autocast.

mmengine's loops take ``fp16=True``, which autocasts to float16 on a GPU (bf16 on the
CPU); these run the same iterations under bf16 on every device, as training does with
:class:`~kdzoo.engine.AutocastOptimWrapper`. :func:`kdzoo.numerics.apply_precision` picks
them for a bf16 run.
"""
import torch
from mmengine.runner import TestLoop, ValLoop

from kdzoo.registry import LOOPS


class _Autocast:
    """Each iteration under ``torch.autocast`` in bf16 on the model's device; mmengine's
    own autocast inside (``fp16=True``) then takes bf16 from it on a GPU too."""

    def _init_autocast(self, dtype):
        if dtype != 'bfloat16':
            raise ValueError(f"dtype must be 'bfloat16', got {dtype!r}: float16 evaluation "
                             "is mmengine's own loop with fp16=True")
        self.fp16 = True
        self.dtype = torch.bfloat16

    def run_iter(self, idx, data_batch):
        model = self.runner.model
        device = next(model.parameters()).device.type
        with torch.autocast(device_type=device, dtype=self.dtype):
            return super().run_iter(idx, data_batch)


@LOOPS.register_module()
class AutocastValLoop(_Autocast, ValLoop):
    """mmengine's ValLoop, every iteration under bf16 autocast."""

    def __init__(self, runner, dataloader, evaluator, dtype='bfloat16'):
        super().__init__(runner, dataloader, evaluator, fp16=True)
        self._init_autocast(dtype)


@LOOPS.register_module()
class AutocastTestLoop(_Autocast, TestLoop):
    """mmengine's TestLoop, every iteration under bf16 autocast."""

    def __init__(self, runner, dataloader, evaluator, dtype='bfloat16'):
        super().__init__(runner, dataloader, evaluator, fp16=True)
        self._init_autocast(dtype)
