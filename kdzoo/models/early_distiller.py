"""Early distillation: logit and hidden-layer distillation from a CNN teacher.

Chen et al., "DearKD: Data-Efficient Early Knowledge Distillation for Vision
Transformers", CVPR 2022, section 3. Stage 1 trains the student on the labels, on the
teacher's hard labels and on the teacher's intermediate feature maps (through an aligner);
stage 2 (``distill_active = False``, set by :class:`DistillStageHook`) trains on the labels
alone and never runs the teacher.
"""
import torch
import torch.nn as nn

from kdzoo.registry import MODELS
from .distiller import Distiller
from .recorder import FeatureRecorder

HIDDEN_KEYS = ('student_layer', 'teacher_layer', 'aligner', 'loss', 'weight', 'name')
STAGE2_DIST_TARGETS = ('labels', None)


@MODELS.register_module()
class EarlyDistiller(Distiller):
    """A :class:`Distiller` with hidden-layer distillation pairs.

    Stage 1 loss: ``(1 - alpha) * criterion(cls, labels) + alpha * distill_loss(dist,
    teacher_logits) + sum_i weight_i * loss_i(aligner_i(student[s_i]), teacher[t_i])``,
    logged as ``loss_cls``, ``loss_distill`` and ``loss_hidden_<name>`` (each pair its own
    term). The teacher runs once per step; its logits and recorded feature maps come from
    that one forward.

    Args:
        hidden_distill: list of dicts, one per pair:

            - ``student_layer``: module name in the student (e.g. 'blocks.7'); its output
              is the token sequence (B, prefix + N, C_s).
            - ``teacher_layer``: module name in the teacher's network (``Teacher.model``,
              e.g. 's3' of timm's regnety_160 or 'layer3' of a CifarResNet); its output is
              a (B, C_t, H_t, W_t) map.
            - ``aligner``: config of the aligner (default ``dict(type='Aligner')``). For
              ``Aligner``, ``student_channels`` and ``num_prefix_tokens`` default to the
              student's, and ``teacher_channels`` to the teacher layer's width (found by
              one dry teacher forward at build time when not given).
            - ``loss``: config of the hidden loss (default ``dict(type='HiddenMSELoss')``).
            - ``weight``: factor of the term (default 1.0).
            - ``name``: suffix of the logged key (default: the pair's index).

            Wrong layer names fail at build time with the list of available names.
        stage2_dist_target: in stage 2 (no teacher), 'labels' trains the distillation head
            on the true labels too (``loss_cls`` is then the mean of both heads'
            criterion), so the joint classifier at test time stays consistent with the
            features; None leaves the distillation head untrained in stage 2.
        model, teacher, distill_loss, alpha, criterion, data_preprocessor: as in
            :class:`Distiller`; ``distill_loss=None`` keeps the hidden terms only.
    """

    def __init__(self, model, teacher, hidden_distill=(), distill_loss=dict(type='HardDistillLoss'),
                 alpha=0.5, stage2_dist_target='labels', criterion=None, data_preprocessor=None,
                 init_cfg=None):
        super().__init__(model, teacher, distill_loss, alpha, criterion, data_preprocessor,
                         init_cfg)
        if stage2_dist_target not in STAGE2_DIST_TARGETS:
            raise ValueError(f'stage2_dist_target must be one of {STAGE2_DIST_TARGETS}, '
                             f'got {stage2_dist_target!r}')
        self.stage2_dist_target = stage2_dist_target
        pairs = [self._check_pair(i, dict(p)) for i, p in enumerate(hidden_distill)]
        names = [p['name'] for p in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f'hidden_distill names must be unique, got {names}')
        self.hidden_pairs = pairs
        # Made before the aligners so that wrong names fail before any dry forward.
        self.student_recorder = FeatureRecorder(self.model, [p['student_layer'] for p in pairs],
                                                owner='student')
        self.teacher_recorder = FeatureRecorder(self.teacher.model,
                                                [p['teacher_layer'] for p in pairs],
                                                owner='teacher', detach=True)
        self.aligners = nn.ModuleList(MODELS.build(self._aligner_cfg(p)) for p in pairs)
        self.hidden_losses = nn.ModuleList(MODELS.build(p['loss']) for p in pairs)
        self.distill_active = self.distill_loss is not None or bool(pairs)

    @staticmethod
    def _check_pair(index, pair):
        unknown = set(pair) - set(HIDDEN_KEYS)
        missing = {'student_layer', 'teacher_layer'} - set(pair)
        if unknown or missing:
            raise ValueError(f'hidden_distill[{index}]: unknown keys {sorted(unknown)}, '
                             f'missing keys {sorted(missing)}; allowed: {HIDDEN_KEYS}')
        pair.setdefault('aligner', dict(type='Aligner'))
        pair.setdefault('loss', dict(type='HiddenMSELoss'))
        pair.setdefault('weight', 1.0)
        pair['name'] = str(pair.get('name', index))
        return pair

    def _aligner_cfg(self, pair):
        cfg = dict(pair['aligner'])
        kind = MODELS.get(cfg['type']) if isinstance(cfg['type'], str) else cfg['type']
        if kind is MODELS.get('Aligner'):
            cfg.setdefault('student_channels', self.model.embed_dim)
            cfg.setdefault('num_prefix_tokens', self.model.num_prefix_tokens)
            if 'teacher_channels' not in cfg:
                cfg['teacher_channels'] = self._teacher_widths()[pair['teacher_layer']]
        return cfg

    @torch.no_grad()
    def _teacher_widths(self):
        """Channel count of every recorded teacher layer, from one dry forward."""
        if not hasattr(self, '_widths'):
            size = getattr(getattr(self.model, 'patch_embed', None), 'img_size', 224)
            param = next(self.teacher.parameters())
            x = torch.zeros(1, 3, size, size, device=param.device)
            with self.teacher_recorder.recording() as feats:
                self.teacher_logits(x)
            self._widths = {name: f.shape[1] for name, f in feats.items()}
            feats.clear()
        return self._widths

    def loss(self, inputs, data_samples):
        targets = self.targets(data_samples)
        if not self.distill_active or (self.distill_loss is None and not self.hidden_pairs):
            cls_logits, dist_logits = self.heads(inputs)
            base = self.criterion(cls_logits, targets)
            if dist_logits is not None and self.stage2_dist_target == 'labels':
                base = (base + self.criterion(dist_logits, targets)) / 2
            return dict(loss_cls=base)
        with self.student_recorder.recording() as student_feats:
            cls_logits, dist_logits = self.heads(inputs)
        with self.teacher_recorder.recording() as teacher_feats:
            teacher_logits = self.teacher_logits(inputs)
        base = self.criterion(cls_logits, targets)
        if self.distill_loss is None:
            losses = dict(loss_cls=base)
        else:
            student_logits = dist_logits if dist_logits is not None else cls_logits
            losses = dict(loss_cls=(1 - self.alpha) * base,
                          loss_distill=self.alpha * self.distill_loss(student_logits,
                                                                      teacher_logits))
        for pair, aligner, hidden_loss in zip(self.hidden_pairs, self.aligners,
                                              self.hidden_losses):
            target = self.teacher_recorder.get(pair['teacher_layer'])
            aligned = aligner(self.student_recorder.get(pair['student_layer']),
                              size=target.shape[-2:])
            losses[f"loss_hidden_{pair['name']}"] = pair['weight'] * hidden_loss(aligned, target)
        # Release the recorded tensors now rather than at the next step.
        student_feats.clear()
        teacher_feats.clear()
        return losses
