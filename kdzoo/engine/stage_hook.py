"""The two-stage schedule of DearKD: distillation first, then the labels alone.

Chen et al., "DearKD: Data-Efficient Early Knowledge Distillation for Vision
Transformers", CVPR 2022, sections 3.1-3.2 and 5.1: 300 epochs of which the first 250 are
stage 1 (with the teacher) and the last 50 stage 2 (without); 800 + 200 for 1000 epochs.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from kdzoo.registry import HOOKS


@HOOKS.register_module()
class DistillStageHook(Hook):
    """Sets ``model.distill_active`` from the epoch: True before ``switch_epoch``, False
    from it on (0-based epoch index, so ``switch_epoch=250`` distils in epochs 1-250 as
    counted in the logs and trains epochs 251-300 without the teacher).

    The stage is decided from ``runner.epoch`` before training (which covers a resumed run)
    and before every epoch, never from a counter of the hook's own, so a run resumed in
    either stage or exactly at the boundary is in the same stage as an uninterrupted one.
    Stage 2 only stops the teacher and the distillation terms: the aligners keep their
    place in the optimizer and simply receive no gradient (DDP then needs
    ``find_unused_parameters=True``).

    Args:
        switch_epoch: first epoch (0-based) of stage 2.
        switch_ratio: alternatively, the fraction of ``max_epochs`` spent in stage 1
            (rounded to the nearest epoch), e.g. 250 / 300.
    """

    priority = 'NORMAL'

    def __init__(self, switch_epoch=None, switch_ratio=None):
        if (switch_epoch is None) == (switch_ratio is None):
            raise ValueError('give exactly one of switch_epoch and switch_ratio')
        if switch_epoch is not None and switch_epoch < 0:
            raise ValueError(f'switch_epoch must be >= 0, got {switch_epoch}')
        if switch_ratio is not None and not 0.0 <= switch_ratio <= 1.0:
            raise ValueError(f'switch_ratio must be in [0, 1], got {switch_ratio}')
        self.switch_epoch = switch_epoch
        self.switch_ratio = switch_ratio

    def resolve_switch_epoch(self, runner):
        if self.switch_epoch is not None:
            return self.switch_epoch
        return int(round(self.switch_ratio * runner.max_epochs))

    @staticmethod
    def distiller(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'distill_active'):
            raise TypeError(f'DistillStageHook needs a model with a distill_active flag (a '
                            f'Distiller); got {type(model).__name__}')
        return model

    def stage_of(self, runner):
        """True (stage 1, distillation) or False (stage 2) for the epoch about to run."""
        return runner.epoch < self.resolve_switch_epoch(runner)

    def before_train(self, runner):
        active = self.stage_of(runner)
        runner.logger.info(f'distillation stages: stage 1 (with the teacher) in epochs '
                           f'1-{self.resolve_switch_epoch(runner)} of {runner.max_epochs}; '
                           f'starting at epoch {runner.epoch + 1} in stage {2 - active}')
        self._set(runner, active)

    def before_train_epoch(self, runner):
        active = self.stage_of(runner)
        if self.distiller(runner).distill_active != active:
            runner.logger.info(f'epoch {runner.epoch + 1}: switching to stage {2 - active} '
                               f'(distillation {"on" if active else "off, teacher not run"})')
        self._set(runner, active)

    def _set(self, runner, active):
        self.distiller(runner).distill_active = active
        runner.message_hub.update_info('distill_stage', 2 - active)
