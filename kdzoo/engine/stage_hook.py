"""The stage scheduler: which distillation terms are active, and with what weight.

DearKD (Chen et al., "DearKD: Data-Efficient Early Knowledge Distillation for Vision
Transformers", CVPR 2022, sections 3.1-3.2 and 5.1) trains 300 epochs of which the first
250 are stage 1 (every term, with the teacher) and the last 50 stage 2 (no term, the
teacher is not run); 800 + 200 for 1000 epochs. The same hook also switches single terms
on late or ramps their weights.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from kdzoo.registry import HOOKS

SEGMENT_KEYS = ('begin', 'end', 'value', 'start', 'stop')


def check_segment(term, segment):
    """A segment ``dict(begin=0, end=None, value=1.0)`` or, for a linear ramp,
    ``dict(begin, end, start, stop)``; returns it completed."""
    where = f'DistillStageHook schedule of term {term!r}'
    if not isinstance(segment, dict):
        raise ValueError(f'{where}: a segment is a dict with keys {SEGMENT_KEYS}, got '
                         f'{segment!r}')
    unknown = set(segment) - set(SEGMENT_KEYS)
    if unknown:
        raise ValueError(f'{where}: unknown keys {sorted(unknown)}; allowed: {SEGMENT_KEYS}')
    seg = dict(begin=0, end=None)
    seg.update(segment)
    for key in ('begin', 'end'):
        value = seg[key]
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(f'{where}: {key} must be an integer >= 0 (0-based, in the hook\'s '
                             f'unit) or None, got {value!r}')
    if seg['begin'] is None:
        seg['begin'] = 0
    if seg['end'] is not None and seg['end'] <= seg['begin']:
        raise ValueError(f'{where}: end ({seg["end"]}) must be after begin ({seg["begin"]})')
    ramp = 'start' in seg or 'stop' in seg
    if ramp and ('value' in seg or 'start' not in seg or 'stop' not in seg
                 or seg['end'] is None):
        raise ValueError(f'{where}: a linear ramp gives begin, end, start and stop (and no '
                         f'value), got {segment!r}')
    for key in ('value', 'start', 'stop'):
        if key in seg and (not isinstance(seg[key], (int, float)) or seg[key] < 0):
            raise ValueError(f'{where}: {key} must be a number >= 0, got {seg[key]!r}')
    if not ramp:
        seg.setdefault('value', 1.0)
    return seg


def segment_value(seg, position):
    """The multiplier of a segment at ``position``, or None outside it."""
    if position < seg['begin'] or (seg['end'] is not None and position >= seg['end']):
        return None
    if 'value' in seg:
        return float(seg['value'])
    frac = (position - seg['begin']) / (seg['end'] - seg['begin'])
    return seg['start'] + (seg['stop'] - seg['start']) * frac


@HOOKS.register_module()
class DistillStageHook(Hook):
    """Sets the Distiller's stage (``set_stage``) before every epoch or iteration.

    Two ways to say it:

    - a switch for all terms: ``switch_epoch`` (0-based: ``switch_epoch=250`` distils in
      epochs 1-250 as counted in the logs and trains epochs 251-300 without the teacher),
      ``switch_iter``, or ``switch_ratio`` (the fraction of the schedule in stage 1:
      of ``max_epochs``, or with ``by_epoch=False`` of ``max_iters``, rounded);
    - a ``schedule`` per term: ``{term: segment or [segments]}``, a segment being
      ``dict(begin=0, end=None, value=1.0)`` (a constant multiplier in [begin, end)) or
      ``dict(begin, end, start, stop)`` (linear from ``start`` at ``begin`` towards
      ``stop`` at ``end``). A listed term is off outside its segments; a term not listed
      stays at 1 throughout. E.g. "term A in epochs 1-250, term B throughout":
      ``schedule=dict(A=dict(end=250))``; a term switched on at epoch 10 and ramped up
      over 20 epochs: ``schedule=dict(B=[dict(begin=10, end=30, start=0., stop=1.),
      dict(begin=30)])``.

    The stage is decided from ``runner.epoch`` / ``runner.iter`` before training (which
    covers a resumed run) and at every epoch or iteration, never from a counter of the
    hook's own, so a run resumed in either stage or exactly at a boundary is in the same
    stage as an uninterrupted one. A switched-off term only stops computing: its
    connectors keep their place in the optimizer and get a zero gradient, so DDP needs no
    search for unused parameters.

    A config that inherits a switch and names another one (a child of a DearKD config
    with ``switch_epoch=250`` under a base's ``switch_ratio``, or ``--cfg-options
    default_hooks.distill_stage.switch_epoch=1``) gets both from mmengine's merge; kdzoo's
    Runner keeps the one set last (the option, else the file read last), see
    :func:`kdzoo.engine.config_check.resolve_stage_switch`.

    Args:
        switch_epoch, switch_iter, switch_ratio: the switch of all terms (one of them, or
            a schedule).
        schedule: per-term segments, as above.
        by_epoch: the unit of ``switch_ratio`` and of the schedule's bounds (epochs, or
            iterations with False).
    """

    priority = 'NORMAL'

    def __init__(self, switch_epoch=None, switch_ratio=None, switch_iter=None, schedule=None,
                 by_epoch=True):
        given = [n for n, v in (('switch_epoch', switch_epoch), ('switch_ratio', switch_ratio),
                                ('switch_iter', switch_iter), ('schedule', schedule))
                 if v is not None]
        if len(given) != 1:
            raise ValueError(f'DistillStageHook takes exactly one of switch_epoch, '
                             f'switch_ratio, switch_iter and schedule; got {given or "none"}'
                             + ('' if not given else
                                ' (a config replaces an inherited one with dict(_delete_=True, '
                                f"type='DistillStageHook', {given[-1]}=...))"))
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
        self.schedule = None
        if schedule is not None:
            if not isinstance(schedule, dict) or not schedule:
                raise ValueError(f'schedule must be a non-empty dict {{term: segments}}, got '
                                 f'{schedule!r}')
            self.schedule = {}
            for term, segments in schedule.items():
                segs = [segments] if isinstance(segments, dict) else list(segments)
                segs = sorted((check_segment(term, s) for s in segs), key=lambda s: s['begin'])
                for a, b in zip(segs, segs[1:]):
                    if a['end'] is None or a['end'] > b['begin']:
                        raise ValueError(f'DistillStageHook schedule of term {term!r}: '
                                         f'segments {a} and {b} overlap')
                self.schedule[term] = segs

    # ----- where the run is ----------------------------------------------------------------
    def _unit(self, runner):
        if self.by_epoch:
            return 'epochs', runner.max_epochs, runner.epoch
        return 'iterations', runner.max_iters, runner.iter

    def resolve_switch(self, runner):
        """The first epoch (by epoch) or iteration (by iteration) of stage 2; None for a
        per-term schedule."""
        if self.switch_epoch is not None:
            return self.switch_epoch
        if self.switch_iter is not None:
            return self.switch_iter
        if self.switch_ratio is not None:
            total = runner.max_epochs if self.by_epoch else runner.max_iters
            return int(round(self.switch_ratio * total))
        return None

    def multipliers(self, runner, terms):
        """{term: multiplier} for the epoch or iteration about to run."""
        _, _, position = self._unit(runner)
        switch = self.resolve_switch(runner)
        if self.schedule is None:
            return {t: float(position < switch) for t in terms}
        out = {}
        for term in terms:
            if term not in self.schedule:
                out[term] = 1.0
                continue
            values = [segment_value(s, position) for s in self.schedule[term]]
            out[term] = next((v for v in values if v is not None), 0.0)
        return out

    @staticmethod
    def distiller(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'set_stage'):
            raise TypeError(f'DistillStageHook needs a Distiller (a model with set_stage); got '
                            f'{type(model).__name__}')
        return model

    # ----- hook points ----------------------------------------------------------------------
    def before_train(self, runner):
        model = self.distiller(runner)
        unit, total, now = self._unit(runner)
        self._check(model, unit, total)
        switch = self.resolve_switch(runner)
        if self.schedule is not None:
            plan = '; '.join(f'{t}: ' + ', '.join(self._describe(s, unit) for s in segs)
                             for t, segs in self.schedule.items())
            runner.logger.info(f'distillation schedule ({unit}, 1-based): {plan}; other '
                               f'terms throughout')
        else:
            stage1 = (f'stage 1 (with the teacher) in {unit} 1-{switch} of {total}' if switch
                      else f'no stage 1: the teacher is not run in any of the {total} {unit}')
            runner.logger.info(f'distillation stages: {stage1}; starting at {unit[:-1]} '
                               f'{now + 1} in stage {1 if now < switch else 2}')
        self._apply(runner, model, None)

    def _check(self, model, unit, total):
        if not model.terms:
            return
        if self.schedule is not None:
            unknown = set(self.schedule) - set(model.terms)
            if unknown:
                raise ValueError(f'DistillStageHook schedules {sorted(unknown)}, which are not '
                                 f'terms of the Distiller; its terms are {list(model.terms)}')
            for term, segs in self.schedule.items():
                late = [s for s in segs if s['begin'] >= total]
                if late:
                    raise ValueError(f'DistillStageHook: a segment of term {term!r} begins at '
                                     f'{late[0]["begin"]}, after the last of the {total} '
                                     f'{unit}')
        for name, value in (('switch_epoch', self.switch_epoch),
                            ('switch_iter', self.switch_iter)):
            if value is not None and value > total:
                raise ValueError(f'DistillStageHook: {name}={value} is beyond the schedule of '
                                 f'{total} {unit}; it must be at most {total}')

    @staticmethod
    def _describe(seg, unit):
        end = seg['end'] if seg['end'] is not None else 'end'
        what = (f"x{seg['value']:g}" if 'value' in seg
                else f"x{seg['start']:g}->x{seg['stop']:g}")
        return f"{unit} {seg['begin'] + 1}-{end} {what}"

    def before_train_epoch(self, runner):
        if self.by_epoch:
            self._apply(runner, self.distiller(runner), f'epoch {runner.epoch + 1}')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not self.by_epoch:
            self._apply(runner, self.distiller(runner), f'iteration {runner.iter + 1}')

    def _apply(self, runner, model, where):
        new = self.multipliers(runner, list(model.terms))
        on = [t for t, m in new.items() if m > 0]
        if where is not None and on != [t for t, m in model.stage.items() if m > 0]:
            if self.schedule is None:
                runner.logger.info(f'{where}: switching to stage {1 if on else 2} '
                                   f'(distillation {"on" if on else "off, teacher not run"})')
            else:
                runner.logger.info(f'{where}: distillation terms now active: '
                                   f'{on or "none, teacher not run"}')
        model.set_stage(new)
        runner.message_hub.update_info('distill_stage', 1 if model.distill_active else 2)
