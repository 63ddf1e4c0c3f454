from .autocast_optim_wrapper import AutocastOptimWrapper
from .checkpoint_hook import AtomicCheckpointHook
from .data_check_hook import DataCheckHook
from .ddp import DistillerDDP
from .loops import AutocastTestLoop, AutocastValLoop
from .optim_constructor import DistillerOptimWrapperConstructor
from .progress_hook import ProgressBarHook
from .runner import Runner
from .stage_hook import DistillStageHook
from .teacher_record_hook import TeacherRecordHook

__all__ = ['AtomicCheckpointHook', 'AutocastOptimWrapper', 'AutocastTestLoop', 'AutocastValLoop', 'DataCheckHook', 'DistillerDDP',
           'DistillerOptimWrapperConstructor', 'DistillStageHook', 'ProgressBarHook', 'Runner',
           'TeacherRecordHook']
