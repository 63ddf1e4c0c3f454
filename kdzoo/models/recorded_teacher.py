"""The reading side of an offline teacher: a :class:`~kdzoo.records.TeacherRecord` that
stands in for the teacher network of a :class:`~kdzoo.models.Distiller`.

A training batch drawn through :class:`~kdzoo.datasets.replay.ReplaySampler` carries each
sample's place in the run (data seed, epoch, position); the teacher's logits of that view
were recorded once (``tools/record_teacher.py``) and are read here by (epoch, position),
so no run has to compute them again. The validation and test accuracy of the teacher comes
from the record's ranks of the true classes (``val.json``), by image path.

``model.teacher_outputs`` is the record of ``model.teacher`` (a path), or a dict of records
by teacher, ``dict(teacher=PATH, NAME=PATH)``, for the named teachers of ``model.teachers``
too (:func:`recorded_teachers`). A teacher that sees its own view of the
samples (``Teacher(view=...)``) is recorded on that view.

That the record belongs to the run (same data, views, teacher and output settings) is
checked before training by :class:`~kdzoo.engine.TeacherRecordHook`; ``verify_every``
checks the values themselves against the teacher run online, every N steps.
"""
import os.path as osp

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from kdzoo.datasets.replay import replay_keys
from kdzoo.records import RecordError, TeacherRecord

#: Loss types that read only the argmax of ``teacher.logits``: a record of kind 'class'
#: (the teacher's class alone) serves them.
ARGMAX_LOSSES = ('HardDistillLoss',)
SAMPLER_HINT = ("train_dataloader.sampler=dict(type='ReplaySampler') (the sampler the "
                'record was made with)')


class RecordedTeacher:
    """The teacher's recorded outputs, looked up by the replay keys of a batch.

    Args:
        path: the record's folder (complete; see :meth:`TeacherRecord.open`).
        verify_every: every N training steps (counted from the run's first iteration, so
            a resumed run checks the same steps), run the teacher network on the batch
            and compare with the record; 0 = never.
        teacher_cfg: the ``model.teacher`` config; a ``random_init`` teacher has no
            accuracy worth reporting, as for the online teacher.
    """

    def __init__(self, path, verify_every=0, teacher_cfg=None, network='teacher'):
        if not isinstance(path, str) or not path:
            raise ValueError(f'teacher_outputs must be the path of a teacher record '
                             f'(tools/record_teacher.py CONFIG --out PATH), got {path!r}')
        if (isinstance(verify_every, bool) or not isinstance(verify_every, int)
                or verify_every < 0):
            raise ValueError(f'verify_every must be an integer >= 0 (0: never check the '
                             f'record against the teacher), got {verify_every!r}')
        self.path = path
        #: The source network whose logits the record holds ('teacher', 'teachers.NAME').
        self.network = network
        self.record = TeacherRecord.open(path)
        self.verify_every = verify_every
        self.random_init = bool((teacher_cfg or {}).get('random_init', False))
        self._val = None
        self._steps = 0

    @property
    def num_classes(self):
        return self.record.num_classes

    @property
    def kind(self):
        return self.record.kind

    def describe(self):
        r = self.record
        kind = r.kind if r.header.get('k') is None else f'{r.kind} k={r.header["k"]}'
        return (f'{self.path} ({kind}, {r.header.get("dtype")}, {r.epochs} epochs of '
                f'{r.positions} views)')

    # ----- checks when the Distiller is built ------------------------------------------------
    def check_classes(self, num_classes):
        if self.num_classes != num_classes:
            raise RecordError(f'{self.path} holds a teacher of {self.num_classes} classes but '
                              f'the student predicts {num_classes}; record the teacher of '
                              'this config')

    def check_terms(self, terms):
        """A 'class' record serves only losses that read the teacher's argmax."""
        if self.kind != 'class':
            return
        for name, term in terms.items():
            loss = type(term.loss).__name__
            if term.reads(f'{self.network}.logits') and loss not in ARGMAX_LOSSES:
                raise RecordError(
                    f"{self.path} holds only the teacher's class (kind 'class'), but term "
                    f"{name!r} ({loss}) reads its logits; only {list(ARGMAX_LOSSES)} read the "
                    "class alone: record kind='logits' or 'topk' for it")

    # ----- training -----------------------------------------------------------------------
    def views(self, data_samples):
        """[(epoch, batch indices, positions)] of a training batch, by epoch."""
        keys = replay_keys(data_samples)
        if keys is None:
            raise RecordError(
                f'the teacher outputs come from the record {self.path}, looked up by each '
                "sample's epoch and position, and this training batch has no replay keys: "
                f'set {SAMPLER_HINT}')
        recorded_seed = self.record.fingerprint.get('data_seed')
        groups = {}
        for i, (data_seed, epoch, position, _) in enumerate(keys):
            if recorded_seed is not None and data_seed != recorded_seed:
                raise RecordError(f'{self.path} was recorded with data seed {recorded_seed}, '
                                  f'this batch has data seed {data_seed}; set '
                                  f'train_dataloader.sampler.data_seed={recorded_seed} or '
                                  'record this run')
            idx, pos = groups.setdefault(epoch, ([], []))
            idx.append(i)
            pos.append(position)
        return [(epoch, idx, pos) for epoch, (idx, pos) in sorted(groups.items())]

    def logits(self, data_samples, device=None):
        """The recorded teacher logits (N, K), float32, in the batch's order. A 'class'
        record gives one-hot rows (their argmax is the recorded class)."""
        out = None
        for epoch, idx, pos in self.views(data_samples):
            if self.kind == 'class':
                part = F.one_hot(self.record.classes(epoch, pos), self.num_classes).float()
            else:
                part = self.record.logits(epoch, pos)
            if out is None:
                out = part.new_empty(len(data_samples), part.shape[1])
            out[torch.as_tensor(idx)] = part
        return out.to(device) if device is not None else out

    def due(self):
        """Whether this training step is checked against the online teacher."""
        if not self.verify_every:
            return False
        step = MessageHub.get_current_instance().get_info('iter')
        if step is None:
            step = self._steps
        self._steps += 1
        return int(step) % self.verify_every == 0

    def verify(self, online, data_samples):
        """Stop with a :class:`RecordError` when the record disagrees with the teacher's
        ``online`` logits of the batch: another argmax (beyond a tie that the stored
        dtype cannot tell apart) or a recorded value off by more than
        :meth:`TeacherRecord.tolerance` (for 'topk', the stored top-k entries only)."""
        online = online.detach().float().cpu()
        for epoch, idx, pos in self.views(data_samples):
            on = online[torch.as_tensor(idx)]
            recorded_class = self.record.classes(epoch, pos)
            best = on.max(1).values
            # Another class only counts when the teacher itself scores it clearly lower.
            wrong = (on.gather(1, recorded_class[:, None])[:, 0]
                     < best - self.record.tolerance(best))
            worst, where = 0.0, None
            bad = wrong.clone()
            if self.kind != 'class':
                rec = self.record.logits(epoch, pos)
                if self.kind == 'topk':
                    index = torch.from_numpy(
                        self.record.read(epoch, pos)['index'].astype('int64'))
                    rec, on = rec.gather(1, index), on.gather(1, index)
                diff = (on - rec).abs()
                over = diff > self.record.tolerance(on)
                bad |= over.any(1)
                if diff.numel():
                    flat = int(diff.argmax())
                    worst = float(diff.view(-1)[flat])
                    where = pos[flat // diff.shape[1]]
            if bad.any():
                positions = [p for p, b in zip(pos, bad.tolist()) if b]
                moved = [p for p, w in zip(pos, wrong.tolist()) if w]
                raise RecordError(
                    f'{self.path} disagrees with the teacher run online (verify_every='
                    f'{self.verify_every}) at epoch {epoch}, positions {positions[:8]}'
                    + (f' (+{len(positions) - 8} more)' if len(positions) > 8 else '')
                    + f': largest difference {worst:.4g}'
                    + ('' if where is None else f' (position {where})')
                    + (f', another class at positions {moved[:8]}' if moved else '')
                    + '. The record was made with other data, views or teacher weights, '
                    'or was changed: record it again (tools/record_teacher.py CONFIG --out '
                    'PATH)')

    # ----- evaluation ---------------------------------------------------------------------
    def val_ranks(self):
        """(exact, by tail): the recorded ranks by image path, and by its last two parts
        (class folder / file) where those are unique, for a data root moved since the
        recording. None when the record has no validation ranks."""
        if self._val is None:
            exact = self.record.val_ranks()
            if exact is None:
                self._val = (None, None)
            else:
                exact = {osp.normpath(p): r for p, r in exact.items()}
                tails, seen = {}, set()
                for p, r in exact.items():
                    tail = _tail(p)
                    if tail in seen:
                        tails.pop(tail, None)
                    else:
                        tails[tail] = r
                    seen.add(tail)
                self._val = (exact, tails)
        return self._val

    @property
    def has_val_ranks(self):
        return self.val_ranks()[0] is not None

    def ranks(self, paths):
        """The recorded rank of the true class of each validation image."""
        exact, tails = self.val_ranks()
        out = []
        for path in paths:
            key = None if path is None else osp.normpath(path)
            rank = exact.get(key) if key is not None else None
            if rank is None and key is not None:
                rank = tails.get(_tail(key))
            if rank is None:
                example = next(iter(exact), None)
                raise RecordError(
                    f'{osp.join(self.path, "val.json")} has no teacher rank for the '
                    f'validation image {path} (it holds {len(exact)} images, e.g. {example}); '
                    'record the validation set of this config again, or set '
                    'model.eval_teacher=False')
            out.append(int(rank))
        return out


def recorded_teachers(teacher_outputs, verify_every=0, teacher=None, teachers=None):
    """{source network: :class:`RecordedTeacher`} of ``model.teacher_outputs``: a path (the
    record of ``model.teacher``) or ``{key: path}`` with keys ``'teacher'``
    (``model.teacher``) and the names of ``model.teachers`` (whose configs the records
    were made from), e.g. ``dict(resnet20=PATH, resnet56=PATH)``. ``teachers``: the
    checked configs of ``model.teachers`` (:func:`~kdzoo.models.teachers.teacher_configs`)."""
    if teacher_outputs is None:
        return {}
    if not isinstance(teacher_outputs, dict):
        return {'teacher': RecordedTeacher(teacher_outputs, verify_every, teacher)}
    allowed = ['teacher'] + sorted(teachers or {})
    out = {}
    for key, path in teacher_outputs.items():
        if key not in allowed:
            raise ValueError(
                f'model.teacher_outputs names {key!r}; its keys are the teachers whose records '
                f"it reads: {allowed} ('teacher' for model.teacher, a name of model.teachers "
                'for a named teacher)')
        if key == 'teacher':
            out['teacher'] = RecordedTeacher(path, verify_every, teacher)
        else:
            out[f'teachers.{key}'] = RecordedTeacher(path, verify_every, teachers[key],
                                                     f'teachers.{key}')
    return out


def _tail(path):
    parts = osp.normpath(path).split(osp.sep)
    return '/'.join(parts[-2:])
