"""tqdm progress bars that share the terminal with mmengine's log lines.

A bar redraws its line in place with carriage returns, while mmengine's logger prints
whole lines to the same terminal; written as they are, a log record lands after the bar's
text (``...loss=2.325]12/06 02:15:30 - mmengine - INFO - Saving checkpoint``). While a bar
is shown, :class:`BarSafeConsole` routes the console handlers of the given loggers (and
Python's warnings) through the bars: the bars are cleared, the record is written on its own
line and the bars are drawn again below it. When stdout or stderr is not a terminal (CI, a
log file, ``| tee``) no bar is drawn at all: the logger's lines carry the progress there.
"""
import logging
import sys
import warnings

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from tqdm import tqdm

from kdzoo.registry import HOOKS


def _is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def interactive_console():
    """True when both stdout (the log lines) and stderr (the bars) are terminals: the only
    case in which a redrawn bar reads as a bar rather than a run of carriage returns."""
    return _is_terminal(sys.stdout) and _is_terminal(sys.stderr)


class _AboveBars:
    """A console stream whose writes clear the console's bars first and redraw them after,
    so that every write starts on a line of its own."""

    def __init__(self, stream, console):
        self.stream, self.console = stream, console

    def write(self, text):
        with self.console.writing():
            self.stream.write(text)
            self.stream.flush()

    def flush(self):
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


class BarSafeConsole:
    """Keeps log records and warnings off the lines of the tqdm bars it holds.

    :meth:`add` a drawn bar and, from the first bar on, every console handler (a
    ``StreamHandler`` on a terminal, not a file) of ``loggers`` writes through
    :meth:`writing`, as does ``warnings.showwarning``; an uncaught exception (Ctrl-C
    included) closes the bars before its traceback is printed. :meth:`remove` the bar when
    it closes; with the last one gone, the handlers and hooks are as they were.

    Args:
        loggers: the loggers whose console handlers to route; None means mmengine's
            current logger and the root logger.
    """

    def __init__(self, loggers=None):
        if loggers is None:
            from mmengine.logging import MMLogger
            loggers = [MMLogger.get_current_instance(), logging.getLogger()]
        self.loggers = list(loggers)
        self.bars = []
        self._routed = []  # (handler, original stream)
        self._showwarning = self._excepthook = None

    @property
    def active(self):
        return bool(self.bars)

    def add(self, bar):
        """Start routing (if ``bar`` is the first) and hold ``bar``; returns it."""
        if getattr(bar, 'disable', False):
            return bar
        if not self.bars:
            self._start()
        self.bars.append(bar)
        return bar

    def remove(self, bar):
        """Forget ``bar`` (closed by the caller); the last one restores the console."""
        if bar in self.bars:
            self.bars.remove(bar)
            if not self.bars:
                self._stop()

    def close_all(self):
        """Close every bar held (their lines are cleared) and restore the console."""
        for bar in list(self.bars):
            bar.close()
            self.remove(bar)

    def writing(self):
        """A context in which a whole line may be written to the terminal: the bars are
        cleared on entry and drawn again (below it) on exit."""
        return _Cleared(self.bars)

    def _start(self):
        seen = set()
        for logger in self.loggers:
            for handler in getattr(logger, 'handlers', []):
                if (id(handler) in seen or not isinstance(handler, logging.StreamHandler)
                        or isinstance(handler, logging.FileHandler)
                        or isinstance(handler.stream, _AboveBars)
                        or not _is_terminal(handler.stream)):
                    continue
                seen.add(id(handler))
                self._routed.append((handler, handler.stream))
                handler.setStream(_AboveBars(handler.stream, self))
        previous_warning, previous_hook = warnings.showwarning, sys.excepthook

        def show_warning(*args, **kwargs):
            with self.writing():
                previous_warning(*args, **kwargs)

        def excepthook(*args):
            self.close_all()
            previous_hook(*args)

        self._showwarning, self._previous_warning = show_warning, previous_warning
        self._excepthook, self._previous_hook = excepthook, previous_hook
        warnings.showwarning, sys.excepthook = show_warning, excepthook

    def _stop(self):
        for handler, stream in reversed(self._routed):
            if isinstance(handler.stream, _AboveBars) and handler.stream.console is self:
                handler.setStream(stream)
        self._routed = []
        # Put back only what is still ours: someone may have wrapped them since.
        if warnings.showwarning is self._showwarning:
            warnings.showwarning = self._previous_warning
        if sys.excepthook is self._excepthook:
            sys.excepthook = self._previous_hook
        self._showwarning = self._excepthook = None


class _Cleared:
    """The bars' lines cleared (under tqdm's lock) for as long as the context lasts."""

    def __init__(self, bars):
        self.bars = [bar for bar in bars if not getattr(bar, 'disable', False)]

    def __enter__(self):
        self.lock = tqdm.get_lock()
        self.lock.acquire()
        for bar in self.bars:
            bar.clear(nolock=True)
            bar.fp.flush()
        return self

    def __exit__(self, *exc):
        try:
            for bar in self.bars:
                bar.refresh(nolock=True)
        finally:
            self.lock.release()
        return False


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """A tqdm bar over every training epoch (the latest loss in its postfix), validation
    and test pass, on the main process.

    Log records and warnings written while a bar is shown appear on their own lines above
    it (:class:`BarSafeConsole`), and a bar clears its line when it closes. The bars are
    drawn only when stdout and stderr are both terminals: in CI, in a log file or through
    ``| tee`` the logger's lines (every ``default_hooks.logger.interval`` iterations, with
    the ETA) are the progress, with no carriage returns between them. With an
    iteration-based training loop the training bar counts the iterations of the whole run.

    Args:
        disable: no bars at all, even on a terminal.
    """

    priority = 'VERY_LOW'

    def __init__(self, disable=False):
        self.disable = disable
        self._bars = {}
        self._console = None

    def _open(self, runner, kind, total, desc, initial=0):
        self._close(kind)  # a bar left open by an interrupted loop
        if not is_main_process() or self.disable:
            return
        draw = interactive_console()
        bar = tqdm(total=total, desc=desc, initial=initial, leave=False, dynamic_ncols=True,
                   disable=not draw)
        self._bars[kind] = bar
        if draw:
            if self._console is None or not self._console.active:
                self._console = BarSafeConsole([runner.logger, logging.getLogger()])
            self._console.add(bar)

    def _close(self, kind):
        bar = self._bars.pop(kind, None)
        if bar is not None:
            bar.close()
            if self._console is not None:
                self._console.remove(bar)

    def _update(self, kind, postfix=None):
        bar = self._bars.get(kind)
        if bar is not None:
            if postfix:
                bar.set_postfix(refresh=False, **postfix)
            bar.update(1)

    def before_train_epoch(self, runner):
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            self._open(runner, 'train', loop.max_iters, 'iter', initial=runner.iter)
        else:
            self._open(runner, 'train', len(runner.train_dataloader),
                       f'epoch {runner.epoch + 1}/{runner.max_epochs}')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        postfix = None
        if outputs and 'loss' in outputs:
            loss = outputs['loss']
            postfix = dict(loss=f'{float(getattr(loss, "detach", lambda: loss)()):.3f}')
        self._update('train', postfix)

    def after_train_epoch(self, runner):
        self._close('train')

    def before_val_epoch(self, runner):
        self._open(runner, 'val', len(runner.val_dataloader), 'val')

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._update('val')

    def after_val_epoch(self, runner, metrics=None):
        self._close('val')

    def before_test_epoch(self, runner):
        self._open(runner, 'test', len(runner.test_dataloader), 'test')

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._update('test')

    def after_test_epoch(self, runner, metrics=None):
        self._close('test')
