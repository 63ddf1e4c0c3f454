from .autocast_optim_wrapper import AutocastOptimWrapper
from .ddp import DistillerDDP
from .optim_constructor import DistillerOptimWrapperConstructor
from .progress_hook import ProgressBarHook
from .stage_hook import DistillStageHook

__all__ = ['AutocastOptimWrapper', 'DistillerDDP', 'DistillerOptimWrapperConstructor',
           'DistillStageHook', 'ProgressBarHook']
