"""A tqdm progress bar over each training epoch."""
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from tqdm import tqdm

from kdzoo.registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """Shows the progress of every training epoch and validation pass (main process only),
    with the latest loss in the bar."""

    priority = 'VERY_LOW'

    def __init__(self, disable=False):
        self.disable = disable
        self._bar = None

    def _open(self, total, desc):
        if is_main_process() and not self.disable:
            self._bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    def _close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def before_train_epoch(self, runner):
        self._open(len(runner.train_dataloader),
                   f'epoch {runner.epoch + 1}/{runner.max_epochs}')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self._bar is not None:
            if outputs and 'loss' in outputs:
                self._bar.set_postfix(loss=f"{outputs['loss'].item():.3f}", refresh=False)
            self._bar.update(1)

    def after_train_epoch(self, runner):
        self._close()

    def before_val_epoch(self, runner):
        self._open(len(runner.val_dataloader), 'val')

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self._bar is not None:
            self._bar.update(1)

    def after_val_epoch(self, runner, metrics=None):
        self._close()

    def before_test_epoch(self, runner):
        self._open(len(runner.test_dataloader), 'test')

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self._bar is not None:
            self._bar.update(1)

    def after_test_epoch(self, runner, metrics=None):
        self._close()
