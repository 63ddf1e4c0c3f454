"""bf16 mixed precision on CPU and GPU."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from kdzoo.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Runs forward passes under ``torch.autocast`` on whatever device the model is on.

    mmengine's AmpOptimWrapper refuses the CPU; bf16 needs no loss scaling, so a plain
    autocast context is all that mixed precision takes here.
    """

    def __init__(self, *args, dtype='bfloat16', **kwargs):
        super().__init__(*args, **kwargs)
        if dtype == 'float16':
            raise ValueError("AutocastOptimWrapper runs bf16, which needs no loss scaling; for "
                             "float16 use mmengine's AmpOptimWrapper (type='AmpOptimWrapper', "
                             "CUDA only), whose gradient scaler keeps small gradients from "
                             "underflowing")
        if dtype != 'bfloat16':
            raise ValueError(f"dtype must be 'bfloat16', got {dtype!r}")
        self.dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model):
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device_type=device, dtype=self.dtype):
            yield
