"""The Distiller: a student trained on labels and on named terms that read a teacher.

A distillation method is a set of named terms (:mod:`kdzoo.models.distill_term`), each a
registered loss whose arguments are bound to sources (:mod:`kdzoo.models.sources`), plus
a stage schedule (:class:`~kdzoo.engine.stage_hook.DistillStageHook`) that sets which
terms are active and with what weight multiplier.
"""
import torch
from mmengine.logging import MMLogger

from kdzoo.registry import MODELS
from .classifier import Classifier, has_dist_head
from .connectors import fill_sizes, missing_sizes
from .distill_term import (DistillTerm, as_sources, bind_arguments, build_loss,
                           check_term_keys, counterpart, flat_sources)
from .recorded_teacher import recorded_teachers
from .recorder import FeatureRecorder
from .sources import check_layer_source, is_teacher
from .teachers import (TEACHER_CHILDREN, build_teachers, built_from_record,
                       check_class_counts, check_named_teacher, check_views, comparable,
                       drop_teacher_keys, network_of, set_ranks, teacher_configs,
                       teacher_input)

IDLE_DIST_HEAD = ('labels', None)
DEIT_TERM = 'distill'


@MODELS.register_module()
class Distiller(Classifier):
    """Student + Teacher + named distillation terms, composed from the config.

    The loss is ``w_base * criterion(cls_logits, targets) + sum_k weight_k * m_k *
    term_k``, logged as ``loss_cls`` and ``loss_<name>`` for every term (0 while it is
    off, and then not computed), where
    ``m_k`` is the term's stage multiplier (1 unless a stage scheduler sets it, 0 =
    inactive) and ``w_base = 1 - sum of weight_k * m_k over active terms with mix=True``.
    ``mix`` is DeiT's convex combination ``(1 - alpha) * base + alpha * distill``
    (Touvron et al., ICML 2021): while such a term is off, the base criterion gets its
    full weight back.

    The teacher runs once per step, and only if an active term reads one of its sources;
    only the layers that active terms read are recorded. It is neither optimised nor
    saved: ``state_dict()`` (and so every checkpoint) holds the student and the terms'
    connectors, and loading one keeps the teacher's own weights. It sees exactly the student's
    batch, after mixup/cutmix, as in DeiT.

    With ``teacher_outputs`` (an offline teacher) ``teacher.logits`` is read from a record
    of the teacher's outputs on the same replayed batches instead (:mod:`kdzoo.models.
    recorded_teacher`), and the network is built only if a term reads its layers; a
    named teacher's logits (``teachers.NAME.logits``) likewise, each from its own record.

    Args:
        student: the student's config (see :class:`Classifier`).
        teacher: a :class:`Teacher` config; needed when a term reads the teacher. When a
            term reads ``teacher.logits`` its class count must equal the student's.
        teachers: more teachers, ``{name: Teacher config}``, read as
            ``teachers.<name>.logits`` and ``teachers.<name>.<module>``
            (:mod:`kdzoo.models.teachers`); each runs once per step when an active term
            reads it, and validation reports its accuracy as ``teacher/<name>/top1``.
        distill: {name: term config}; see :mod:`kdzoo.models.distill_term` for the keys
            and :mod:`kdzoo.models.sources` for the sources.
        distill_loss: DeiT's one-line form: a logit loss (``HardDistillLoss``,
            ``SoftDistillLoss`` or a user's) that becomes the term ``distill`` with
            ``weight=alpha, mix=True``, reading ``student.logits`` and ``teacher.logits``
            (by argument name, else as its first two arguments). None / 'none': no such
            term.
        alpha: the weight of that term, in [0, 1].
        idle_dist_head: what trains a distillation head that no active term reads (e.g.
            in DearKD's second stage, Chen et al. CVPR 2022): 'labels' (``loss_cls`` is
            then the mean of both heads' criterion, so the joint classifier stays
            consistent) or None (the head is left untrained).
        eval_teacher: validation and test also report the teacher's own accuracy
            (``teacher/top1``, ...; see :meth:`predict`). Only a teacher with weights and
            the student's class count is evaluated.
        teacher_outputs: an offline teacher: the folder of a teacher record
            (``tools/record_teacher.py``) from which ``teacher.logits`` is read, by each
            training sample's epoch and position (the training loader must use
            ``ReplaySampler``); see :mod:`kdzoo.models.recorded_teacher`. The teacher
            network is then built only when a term reads one of its layers or
            ``verify_every > 0``; ``teacher`` stays the config the record was made from
            (:class:`~kdzoo.engine.TeacherRecordHook` checks that it is). A dict
            ``dict(teacher=PATH, NAME=PATH)`` gives records of named teachers too (each
            made with ``kdzoo record-teacher CONFIG --teacher NAME``).
        verify_every: with ``teacher_outputs``, every N training steps the teacher also
            runs online and the record must agree with it; 0 (default) never.
        criterion, data_preprocessor, compile: as in :class:`Classifier`; ``compile``
            compiles the student and the teacher network.
    """

    def __init__(self, student=None, teacher=None, distill=None, distill_loss=None, alpha=0.5,
                 idle_dist_head='labels', criterion=None, data_preprocessor=None,
                 init_cfg=None, compile=False, eval_teacher=True, teacher_outputs=None,
                 verify_every=0, teachers=None, **kwargs):
        legacy = sorted(set(kwargs) & {'hidden_distill', 'stage2_dist_target'})
        if legacy:
            raise TypeError(f'Distiller: {legacy} were replaced by named terms: write each '
                            'hidden pair as a term in distill=dict(NAME=dict(loss=..., '
                            "inputs=..., connectors=...)) and stage2_dist_target as "
                            'idle_dist_head (see README.md, "Distillation terms")')
        super().__init__(student, criterion, data_preprocessor, init_cfg, compile, **kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        if idle_dist_head not in IDLE_DIST_HEAD:
            raise ValueError(f'idle_dist_head must be one of {IDLE_DIST_HEAD}, got '
                             f'{idle_dist_head!r}')
        self.idle_dist_head = idle_dist_head
        if teacher_outputs is None and verify_every:
            raise ValueError('verify_every checks a teacher record against the teacher; it '
                             'needs model.teacher_outputs=PATH')
        named = teacher_configs(teachers)
        #: {source network: RecordedTeacher}: the teachers whose logits come from a record.
        self.recorded = recorded_teachers(teacher_outputs, verify_every, teacher, named)
        self.recorded_teacher = self.recorded.get('teacher')
        self._teacher_names = sorted(named)
        specs = self._term_specs(distill, distill_loss, alpha)
        bindings = {name: self._bind(name, spec) for name, spec in specs.items()}
        self.teacher = None
        if self._builds_teacher(teacher, bindings):
            # Built under a generator of its own: whether the teacher network is built
            # (online) or not (from a record) must not change the student's
            # initialisation or any later random draw of the run.
            with torch.random.fork_rng(devices=[]):
                self.teacher = MODELS.build(teacher)
        skip = {name for name in named if not self._builds_named(name, bindings)}
        self.teachers = torch.nn.ModuleDict(build_teachers(named, skip))
        check_views(self._teacher_modules())
        self._check_sources(bindings)
        self._make_recorders(bindings)
        shapes = self._layer_shapes(specs)
        terms = {}
        for name, spec in specs.items():
            loss, bound = bindings[name]
            terms[name] = DistillTerm(name, loss, bound,
                                      self._connectors(name, spec, bound, shapes),
                                      spec.get('weight', 1.0), spec.get('mix', False))
        self.terms = torch.nn.ModuleDict(terms)
        mixed = sum(t.weight for t in self.terms.values() if t.mix)
        if mixed > 1.0 + 1e-9:
            raise ValueError(f'the weights of the mix=True terms add up to {mixed}; they share '
                             "the base criterion's weight and must add up to at most 1")
        self._multipliers = {name: 1.0 for name in self.terms}
        self.eval_teacher = bool(eval_teacher)
        #: {teacher network: {sample key: rank of its true class among the teacher's logits}}
        self._ranks = {network: {} for network in self._teacher_modules()}
        if any(t.reads('teacher.logits') for t in self.terms.values()):
            self._check_classes()
        check_class_counts(self.terms, self._class_count, self.num_classes)
        for recorded in self.recorded.values():
            recorded.check_terms(self.terms)
        self._register_state_dict_hook(_drop_teacher)
        self._register_load_state_dict_pre_hook(self._keep_own_teacher)
        if self.compile_cfg is not None:
            # After the dry forward and the hooks: the recorders' hooks are traced with
            # the networks, and a stage switch compiles each network once more.
            self.compile_student()
            for net in self._teacher_modules().values():
                net.model.compile(**self.compile_cfg)

    # ----- building -----------------------------------------------------------------------
    @staticmethod
    def _term_specs(distill, distill_loss, alpha):
        specs = {}
        if distill_loss == 'none':
            distill_loss = None
        if distill_loss is not None:
            specs[DEIT_TERM] = dict(loss=distill_loss, weight=alpha, mix=True,
                                    positional=('student.logits', 'teacher.logits'))
        for name, cfg in dict(distill or {}).items():
            if name in specs:
                raise ValueError(f"distillation term {name!r} is also made by distill_loss; "
                                 'give it another name or drop distill_loss')
            if cfg is None:  # a child config removes an inherited term
                continue
            cfg = dict(cfg)
            check_term_keys(name, cfg)
            specs[name] = cfg
        return specs

    def _builds_teacher(self, teacher, bindings):
        """Whether the teacher network is built: always online; with a record only when
        a term reads one of its layers or the record is verified against it."""
        recorded = self.recorded_teacher
        if recorded is not None and teacher is None and recorded.verify_every:
            raise ValueError('verify_every runs the teacher to check the record against it; '
                             'give the model.teacher the record was made with')
        if teacher is None or recorded is None:
            return teacher is not None
        return built_from_record('teacher', recorded, self._layers_read('teacher', bindings))

    def _builds_named(self, name, bindings):
        """Whether the named teacher ``name`` is built: always, unless a record gives its
        logits and no term reads its layers (nor is the record verified)."""
        network = network_of(name)
        recorded = self.recorded.get(network)
        if recorded is None:
            return True
        return built_from_record(network, recorded, self._layers_read(network, bindings))

    @staticmethod
    def _layers_read(network, bindings):
        return sorted({s.text for _, bound in bindings.values() for s in flat_sources(bound)
                       if s.network == network and s.is_layer})

    def _class_count(self, network):
        """The class count of the teacher of source ``network`` (its record's, when it is
        not built)."""
        module = self._teacher_modules().get(network)
        if module is None:
            return self.recorded[network].num_classes
        return module.num_classes(size=input_size(self.student)[-1])

    def _bind(self, name, spec):
        loss = build_loss(name, spec['loss'])
        bound = bind_arguments(name, loss, dict(spec.get('inputs') or {}),
                               spec.get('positional', ()))
        return loss, bound

    def _teacher_modules(self):
        """{source network: Teacher}: 'teacher' and 'teachers.<name>' for each named one."""
        out = {} if self.teacher is None else {'teacher': self.teacher}
        out.update({network_of(name): t for name, t in self.teachers.items()})
        return out

    def teacher_module(self, network):
        """The built :class:`Teacher` of source network ``network`` ('teacher',
        'teachers.NAME')."""
        modules = self._teacher_modules()
        if network not in modules:
            raise ValueError(f'no teacher network {network!r} is built; the built teachers '
                             f'are {sorted(modules)}')
        return modules[network]

    def _networks(self):
        nets = {'student': self.student}
        nets.update({k: t.model for k, t in self._teacher_modules().items()})
        return nets

    def _check_sources(self, bindings):
        nets = self._networks()
        for name, (_, bound) in bindings.items():
            listed = [(f'{a!r}[{i}]' if isinstance(v, tuple) else repr(a), s)
                      for a, v in bound.items() for i, s in enumerate(as_sources(v))]
            for argument, source in listed:
                where = f'distillation term {name!r}, input {argument}'
                if source.network is not None and source.network != 'teacher' and \
                        is_teacher(source.network):
                    check_named_teacher(source, self._teacher_names, where)
                if (source.network == 'teacher' and self.teacher is None
                        and not (source.text == 'teacher.logits'
                                 and self.recorded_teacher is not None)):
                    raise ValueError(f'{where} reads {source.text!r} but the Distiller has no '
                                     'teacher; give model.teacher')
                if source.text == 'student.dist_logits' and not has_dist_head(self.student):
                    raise ValueError(f'{where} reads student.dist_logits but the student '
                                     f'({type(self.student).__name__}) has no distillation '
                                     'head; read student.logits (its class head) instead')
                if source.is_layer:
                    check_layer_source(source, nets[source.network], where)

    def _make_recorders(self, bindings):
        keys = {network: [] for network in ['student'] + list(self._teacher_modules())}
        for _, bound in bindings.values():
            for source in flat_sources(bound):
                if source.is_layer:
                    keys[source.network].append(source.record_key)
        self.student_recorder = FeatureRecorder(self.student, keys['student'], owner='student')
        #: {teacher network: its recorder} ('teacher', 'teachers.<name>').
        self.teacher_recorders = {
            network: FeatureRecorder(t.model, keys[network], owner=network, detach=True)
            for network, t in self._teacher_modules().items()}
        self.teacher_recorder = self.teacher_recorders.get('teacher')

    @torch.no_grad()
    def _layer_shapes(self, specs):
        """{source text: shape} of every layer source, from one dry forward of both
        networks, made only when a connector needs its sizes filled in."""
        needs = any(missing_sizes(c) for s in specs.values()
                    for c in (s.get('connectors') or {}).values())
        if not needs:
            return {}
        size = input_size(self.student)
        param = next(self.student.parameters())
        x = torch.zeros(1, 3, *size, device=param.device)
        was = self.student.training
        self.student.eval()
        try:
            with self.student_recorder.recording() as feats:
                self.heads(x)
            shapes = {f'student.{k}': tuple(v.shape) for k, v in feats.items()}
            for network, teacher in self._teacher_modules().items():
                with self.teacher_recorders[network].recording() as feats:
                    self.run_teacher(teacher, x)
                shapes.update({f'{network}.{k}': tuple(v.shape) for k, v in feats.items()})
        finally:
            self.student.train(was)
        self._release_recorded()
        return shapes

    def _connectors(self, name, spec, bound, shapes):
        connectors = {}
        for argument, cfg in dict(spec.get('connectors') or {}).items():
            if argument not in bound:
                raise ValueError(f'distillation term {name!r}: connector for {argument!r}, '
                                 f'which is not one of its inputs {sorted(bound)}')
            sources = as_sources(bound[argument])
            for source in sources:
                if not source.is_layer:
                    raise ValueError(f'distillation term {name!r}: a connector applies to '
                                     f'layer sources, not to {source.text!r}')
            cfg = dict(cfg)
            if missing_sizes(cfg):
                other = counterpart(bound, argument)
                if other is not None:
                    other = [shapes[s.text] for s in as_sources(other)]
                own = [shapes[s.text] for s in sources]
                if not isinstance(bound[argument], tuple):
                    own, other = own[0], (other[0] if other is not None else None)
                net = self._networks()[sources[0].network]
                cfg = fill_sizes(cfg, own, other, getattr(net, 'num_prefix_tokens', 0))
            connectors[argument] = MODELS.build(cfg)
        return connectors

    def _check_classes(self):
        if self.recorded_teacher is not None:
            self.recorded_teacher.check_classes(self.num_classes)
            if self.teacher is None:
                return
        size = input_size(self.student)
        n_teacher = self.teacher.num_classes(size=size[-1])
        if n_teacher != self.num_classes:
            raise ValueError(f'teacher predicts {n_teacher} classes but the student '
                             f'{self.num_classes}; set num_classes of both to the same value')

    # ----- stages -------------------------------------------------------------------------
    def set_stage(self, multipliers=None):
        """Set every term's weight multiplier: ``{name: m}`` (terms left out are off, m = 0
        is off) or None for all terms at 1. The one way to change the stage."""
        if multipliers is None:
            multipliers = {name: 1.0 for name in self.terms}
        unknown = set(multipliers) - set(self.terms)
        if unknown:
            raise ValueError(f'no distillation terms named {sorted(unknown)}; the terms are '
                             f'{list(self.terms)}')
        for name, m in multipliers.items():
            if not isinstance(m, (int, float)) or m < 0:
                raise ValueError(f'the multiplier of term {name!r} must be a number >= 0, '
                                 f'got {m!r}')
        self._multipliers = {name: float(multipliers.get(name, 0.0)) for name in self.terms}

    @property
    def stage(self):
        """{term name: multiplier} in force."""
        return dict(self._multipliers)

    @property
    def distill_active(self):
        """Whether any term is active (the teacher may run)."""
        return any(m > 0 for m in self._multipliers.values())

    def active_terms(self):
        return {n: t for n, t in self.terms.items() if self._multipliers[n] > 0}

    # ----- the loss -----------------------------------------------------------------------
    def run_teacher(self, teacher, inputs):
        """``teacher``'s float32 logits on the student's batch (each teacher adapts it to its
        own normalisation and resolution)."""
        pre = self.data_preprocessor
        mean = pre.mean if getattr(pre, '_enable_normalize', False) else None
        std = pre.std if getattr(pre, '_enable_normalize', False) else None
        return teacher(inputs, mean, std)

    def teacher_logits(self, inputs):
        return self.run_teacher(self.teacher, inputs)

    def _release_recorded(self):
        # Release the recorded tensors now rather than at the next step.
        self.student_recorder.outputs = {}
        for recorder in self.teacher_recorders.values():
            recorder.outputs = {}

    def forward(self, inputs, data_samples=None, mode='tensor', views=None):
        """As :meth:`Classifier.forward`; in ``'loss'`` mode ``views`` are the teachers'
        views of the batch ({teacher network: batch}), from the data preprocessor."""
        if mode == 'loss':
            return self.loss(inputs, data_samples, views)
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs, data_samples, views=None):
        active = self.active_terms()
        sources = set().union(*(t.sources for t in active.values())) if active else set()
        layer_keys = {net: [s.record_key for s in sources if s.is_layer and s.network == net]
                      for net in ['student', 'teacher'] + list(self._teacher_modules())}
        with self.student_recorder.recording(layer_keys['student']):
            cls_logits, dist_logits = self.heads(inputs)
        values = {'student.cls_logits': cls_logits, 'student.dist_logits': dist_logits,
                  'student.logits': dist_logits if dist_logits is not None else cls_logits}
        for network in ['teacher'] + [network_of(n) for n in self._teacher_names]:
            if any(s.network == network for s in sources):  # each teacher once, if read
                values.update(self._teacher_values(network, inputs, data_samples, sources,
                                                   layer_keys.get(network, []), views))
        targets = self.targets(data_samples)
        values['targets'] = targets
        if any(s.text == 'labels' for s in sources):
            values['labels'] = torch.cat([s.gt_label for s in data_samples])
        if any(s.text == 'indices' for s in sources):
            values['indices'] = sample_indices(data_samples, inputs.device)

        def lookup(source):
            if source.is_layer:
                recorder = (self.student_recorder if source.network == 'student'
                            else self.teacher_recorders[source.network])
                return recorder.get(source.record_key)
            return values[source.text]

        base = self.criterion(cls_logits, targets)
        reads_dist = any(t.reads('student.dist_logits', 'student.logits')
                         for t in active.values())
        if dist_logits is not None and not reads_dist:
            if self.idle_dist_head == 'labels':
                base = (base + self.criterion(dist_logits, targets)) / 2
            else:  # in the graph with a zero gradient, so DDP needs no unused-parameter search
                base = base + 0.0 * dist_logits.sum()
        mixed = sum(t.weight * self._multipliers[n] for n, t in active.items() if t.mix)
        losses = dict(loss_cls=(1 - mixed) * base)
        for name, term in self.terms.items():
            if name in active:
                losses[f'loss_{name}'] = term.weight * self._multipliers[name] * term(lookup)
            else:
                # Logged as 0: mmengine's log would otherwise repeat the last active value.
                # Its trainable parameters (connectors) stay in the graph with a zero
                # gradient, so DDP needs no search for unused parameters at any step.
                params = [p for p in term.parameters() if p.requires_grad]
                losses[f'loss_{name}'] = (0.0 * sum(p.sum() for p in params) if params
                                          else base.new_zeros(()))
        self._release_recorded()
        return losses

    def _teacher_values(self, network, inputs, data_samples, sources, layers, views):
        """``{network}.logits`` of the batch: the teacher run on its input (the student's
        batch or its own view), or read from its record; with a record, the network runs
        only for the layers that active terms read (``layers``) and on the steps that
        ``verify_every`` checks."""
        teacher = self._teacher_modules().get(network)
        recorded = self.recorded.get(network)

        def online():
            return self.run_teacher(teacher, teacher_input(network, teacher, inputs, views))

        logits = None
        if recorded is None or layers:
            with self.teacher_recorders[network].recording(layers):
                logits = online()
        if recorded is None:
            return {f'{network}.logits': logits}
        if not any(s.text == f'{network}.logits' for s in sources):
            return {}
        if recorded.due():
            recorded.verify(online() if logits is None else logits, data_samples)
        return {f'{network}.logits': recorded.logits(data_samples, inputs.device)}

    # ----- evaluation -------------------------------------------------------------------
    def predict(self, inputs, data_samples=None):
        """The student's predictions (:meth:`Classifier.predict`) and, in validation and
        test, the rank of each sample's true class among the teacher's logits
        (``teacher_rank``: top-k correct iff rank < k), from which
        :class:`~kdzoo.evaluation.HeadsAccuracy` reports ``teacher/top<k>``; the same for
        each named teacher (``teacher_rank_NAME`` -> ``teacher/NAME/top<k>``). A teacher
        read from a record (and not built) gives the record's validation ranks.

        The teacher is frozen and the evaluation pipeline deterministic, so each sample's
        rank is computed once and kept (keyed by image path and shape): the first
        validation runs the teacher, later validations and a test on the same images do
        not. Each DDP rank keeps the ranks of its own shard; the evaluator gathers them.
        """
        samples = super().predict(inputs, data_samples)
        if data_samples is None or not all('gt_label' in s for s in samples):
            return samples
        if not self.eval_teacher:
            return samples
        size = input_size(self.student)[-1]
        fields = [('teacher', 'teacher_rank')] + [(network_of(n), f'teacher_rank_{n}')
                                                  for n in self._teacher_names]
        for network, field in fields:
            teacher = self._teacher_modules().get(network)
            recorded = self.recorded.get(network)
            if teacher is not None:
                if comparable(teacher, self.num_classes, size):
                    set_ranks(samples, lambda idx, t=teacher: self.run_teacher(t, inputs[idx]),
                              self._ranks[network], field)
            elif recorded is not None and self._record_ranks_reported(recorded):
                self._set_recorded_ranks(samples, recorded, field)
        return samples

    @staticmethod
    def _set_recorded_ranks(samples, recorded, field):
        """An offline teacher's ranks, from its record's validation ranks."""
        ranks = recorded.ranks([s.metainfo.get('img_path') for s in samples])
        for sample, rank in zip(samples, ranks):
            sample.set_field(torch.tensor(rank), field, field_type='data')

    @staticmethod
    def _record_ranks_reported(recorded):
        """Whether a record's teacher accuracy is reported (decided once per record):
        trained weights and validation ranks in the record (else a warning, once)."""
        if getattr(recorded, '_reported', None) is None:
            recorded._reported = not recorded.random_init and recorded.has_val_ranks
            if not recorded.random_init and not recorded.has_val_ranks:
                MMLogger.get_current_instance().warning(
                    f'{recorded.path} has no validation ranks (val.json): the accuracy of '
                    f'{recorded.network} is not reported')
        return recorded._reported

    def _keep_own_teacher(self, state_dict, prefix, *args):
        # The teachers are not training state: they keep the weights of their own
        # checkpoints, whatever a distiller checkpoint holds (older ones saved the teacher).
        drop_teacher_keys(state_dict, prefix)
        for child in TEACHER_CHILDREN:
            module = getattr(self, child)
            if module is None:
                continue
            for key, value in module.state_dict().items():
                state_dict[f'{prefix}{child}.{key}'] = value

    def _rename_legacy_keys(self, state_dict, prefix, *args):
        # EarlyDistiller kept its hidden pairs' aligners as aligners.<i>, in order.
        super()._rename_legacy_keys(state_dict, prefix, *args)
        connected = [(n, a) for n, t in self.terms.items() for a in t.connectors]
        for key in [k for k in state_dict if k.startswith(prefix + 'aligners.')]:
            index, _, rest = key[len(prefix + 'aligners.'):].partition('.')
            if index.isdigit() and int(index) < len(connected):
                name, argument = connected[int(index)]
                new = f'{prefix}terms.{name}.connectors.{argument}.{rest}'
                state_dict[new] = state_dict.pop(key)


def _drop_teacher(module, state_dict, prefix, local_metadata):
    # Saved checkpoints hold the student and the terms' connectors, not the teachers,
    # which come back from their own checkpoints (a RegNetY-16GF is 319 MB).
    drop_teacher_keys(state_dict, prefix)
    return state_dict


def sample_indices(data_samples, device):
    """The samples' indices in their dataset (the ``sample_idx`` that mmengine's datasets
    give each sample and ``PackInputs`` keeps), as an int64 tensor on ``device``."""
    try:
        idx = [int(s.metainfo['sample_idx']) for s in data_samples]
    except KeyError:
        raise ValueError(
            "a distillation term reads 'indices', but the training samples carry no "
            "sample_idx: keep 'sample_idx' in PackInputs' meta_keys (it is there by default) "
            'and use a dataset derived from mmengine\'s BaseDataset') from None
    return torch.tensor(idx, dtype=torch.long, device=device)


def input_size(net, default=224):
    """(H, W) that ``net`` takes: its patch embedding's image size, timm's pretrained
    input size, else ``default``."""
    size = getattr(getattr(net, 'patch_embed', None), 'img_size', None)
    if size is None:
        cfg = getattr(net, 'pretrained_cfg', None) or {}
        size = cfg.get('input_size', (3, default, default))[1:]
    if isinstance(size, int):
        size = (size, size)
    return tuple(size)
