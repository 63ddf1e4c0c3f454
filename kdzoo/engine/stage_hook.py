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
    """Sets ``model.distill_active``: True before the switch point, False from it on.

    By epoch (the default), the switch point is a 0-based epoch index, so
    ``switch_epoch=250`` distils in epochs 1-250 as counted in the logs and trains epochs
    251-300 without the teacher. By iteration (``switch_iter``, or ``switch_ratio`` with
    ``by_epoch=False``), it is a 0-based iteration index checked before every iteration:
    for short schedules of a few long epochs and for iteration-based loops.

    The stage is decided from ``runner.epoch`` / ``runner.iter`` before training (which
    covers a resumed run) and at every epoch or iteration, never from a counter of the
    hook's own, so a run resumed in either stage or exactly at the boundary is in the same
    stage as an uninterrupted one. Stage 2 only stops the teacher and the distillation
    terms: the aligners keep their place in the optimizer and simply receive no gradient
    (DDP then needs ``find_unused_parameters=True``).

    Args:
        switch_epoch: first epoch (0-based) of stage 2.
        switch_iter: first iteration (0-based) of stage 2; switches by iteration.
        switch_ratio: alternatively, the fraction of the schedule spent in stage 1, e.g.
            250 / 300: of ``max_epochs`` (rounded to the nearest epoch) or, with
            ``by_epoch=False``, of ``max_iters`` (rounded to the nearest iteration).
        by_epoch: with ``switch_ratio``, whether the switch falls on an epoch boundary.
    """

    priority = 'NORMAL'

    def __init__(self, switch_epoch=None, switch_ratio=None, switch_iter=None, by_epoch=True):
        given = [n for n, v in (('switch_epoch', switch_epoch), ('switch_ratio', switch_ratio),
                                ('switch_iter', switch_iter)) if v is not None]
        if len(given) != 1:
            raise ValueError(f'give exactly one of switch_epoch, switch_ratio and '
                             f'switch_iter; got {given or "none"}')
        for name, value in (('switch_epoch', switch_epoch), ('switch_iter', switch_iter)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f'{name} must be an integer >= 0, got {value!r}')
        if switch_ratio is not None and not 0.0 <= switch_ratio <= 1.0:
            raise ValueError(f'switch_ratio must be in [0, 1], got {switch_ratio}')
        if switch_epoch is not None and not by_epoch:
            raise ValueError('switch_epoch switches by epoch; use switch_iter or '
                             'switch_ratio with by_epoch=False')
        self.switch_epoch = switch_epoch
        self.switch_iter = switch_iter
        self.switch_ratio = switch_ratio
        self.by_epoch = by_epoch and switch_iter is None

    def resolve_switch(self, runner):
        """The first epoch (by epoch) or iteration (by iteration) of stage 2."""
        if self.switch_epoch is not None:
            return self.switch_epoch
        if self.switch_iter is not None:
            return self.switch_iter
        total = runner.max_epochs if self.by_epoch else runner.max_iters
        return int(round(self.switch_ratio * total))

    @staticmethod
    def distiller(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'distill_active'):
            raise TypeError(f'DistillStageHook needs a model with a distill_active flag (a '
                            f'Distiller); got {type(model).__name__}')
        return model

    def stage_of(self, runner):
        """True (stage 1, distillation) or False (stage 2) for the epoch or iteration
        about to run."""
        position = runner.epoch if self.by_epoch else runner.iter
        return position < self.resolve_switch(runner)

    def before_train(self, runner):
        active = self.stage_of(runner)
        unit, total, now = (('epochs', runner.max_epochs, runner.epoch) if self.by_epoch
                            else ('iterations', runner.max_iters, runner.iter))
        switch = self.resolve_switch(runner)
        stage1 = (f'stage 1 (with the teacher) in {unit} 1-{switch} of {total}' if switch
                  else f'no stage 1: the teacher is not run in any of the {total} {unit}')
        runner.logger.info(f'distillation stages: {stage1}; starting at {unit[:-1]} '
                           f'{now + 1} in stage {2 - active}')
        self._set(runner, active)

    def before_train_epoch(self, runner):
        if self.by_epoch:
            self._update(runner, f'epoch {runner.epoch + 1}')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not self.by_epoch:
            self._update(runner, f'iteration {runner.iter + 1}')

    def _update(self, runner, where):
        active = self.stage_of(runner)
        if self.distiller(runner).distill_active != active:
            runner.logger.info(f'{where}: switching to stage {2 - active} '
                               f'(distillation {"on" if active else "off, teacher not run"})')
        self._set(runner, active)

    def _set(self, runner, active):
        self.distiller(runner).distill_active = active
        runner.message_hub.update_info('distill_stage', 2 - active)
