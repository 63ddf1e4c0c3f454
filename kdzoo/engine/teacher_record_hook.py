"""Checks, before the first step, that an offline teacher's record belongs to the run."""
import math

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop

from kdzoo.models.teachers import name_of
from kdzoo.records import RecordError, TeacherRecord, run_fingerprint
from kdzoo.records.fingerprint import fingerprint_differences
from kdzoo.registry import HOOKS

RECORD_COMMAND = 'tools/record_teacher.py CONFIG --out PATH'


def epochs_needed(runner):
    """The number of epochs the training schedule reads (an iteration-based loop reads
    its iterations' worth of epochs)."""
    loop = runner.train_loop
    if isinstance(loop, IterBasedTrainLoop):
        return math.ceil(loop.max_iters / max(len(loop.dataloader), 1))
    return int(loop.max_epochs)


@HOOKS.register_module()
class TeacherRecordHook(Hook):
    """Stops a run whose teacher records (``model.teacher_outputs``: one, or one per source
    network) do not fit it, before any weight changes.

    The record (:class:`~kdzoo.records.TeacherRecord`) must be complete and unharmed, hold
    every epoch of the schedule, and carry the fingerprint of this run
    (:func:`~kdzoo.records.run_fingerprint` of the config and the built training dataset,
    for the record's output settings): the same data files, pipeline, sampler, data seed,
    mixup/cutmix, teacher config and checkpoint content, library versions. Each difference
    is named. A model without a record is left alone.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for network, recorded in sorted((getattr(model, 'recorded', None) or {}).items()):
            self.check(runner, network, recorded.path)

    @staticmethod
    def check(runner, network, path):
        record = TeacherRecord.open(path)
        run = run_fingerprint(runner.cfg, runner.train_dataloader.dataset,
                              record.fingerprint['output'], network)
        differences = fingerprint_differences(record.fingerprint, run)
        command = (RECORD_COMMAND if network == 'teacher'
                   else f'{RECORD_COMMAND} --teacher {name_of(network)}')
        if differences:
            raise RecordError(
                f'{path} (the record of {network}) was recorded for another run; it differs '
                'from this one in: ' + '; '.join(differences)
                + f'. Record this run ({command}) or run the config it was made for')
        epochs = epochs_needed(runner)
        if record.epochs < epochs:
            raise RecordError(f'{path} holds {record.epochs} epochs, the schedule trains '
                              f'{epochs} (train_cfg.max_epochs); record at least {epochs} '
                              f'epochs ({command})')
        runner.logger.info(f'teacher record {path} ({network}): fingerprint matches this '
                           f'run, {record.epochs} epochs for a schedule of {epochs}')
