from .autocast_optim_wrapper import AutocastOptimWrapper
from .ddp import DistillerDDP
from .progress_hook import ProgressBarHook

__all__ = ['AutocastOptimWrapper', 'DistillerDDP', 'ProgressBarHook']
