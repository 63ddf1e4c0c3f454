"""The Distiller: a student trained on labels and on a frozen teacher's outputs."""
from kdzoo.registry import MODELS
from .classifier import Classifier


@MODELS.register_module()
class Distiller(Classifier):
    """Student + Teacher + losses, composed from the config (DeiT, Touvron et al. 2021).

    The loss is ``(1 - alpha) * criterion(cls_logits, labels) + alpha *
    distill_loss(dist_logits, teacher_logits)``, logged as ``loss_cls`` and
    ``loss_distill``. A student without a distillation token distils through its class
    head (the "usual distillation" of the paper). The teacher sees exactly the student's
    batch, after mixup/cutmix, as in DeiT.

    Args:
        model: the student's config.
        teacher: a :class:`Teacher` config; its class count must equal the student's.
        distill_loss: a logit loss config (``HardDistillLoss``, ``SoftDistillLoss`` or a
            user's registered loss), or None / 'none' for no distillation.
        alpha: weight of the distillation term.
        criterion, data_preprocessor: as in :class:`Classifier`.
    """

    def __init__(self, model, teacher, distill_loss=dict(type='HardDistillLoss'), alpha=0.5,
                 criterion=None, data_preprocessor=None, init_cfg=None):
        super().__init__(model, criterion, data_preprocessor, init_cfg)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        if distill_loss == 'none':
            distill_loss = None
        self.teacher = MODELS.build(teacher)
        self.distill_loss = MODELS.build(distill_loss) if distill_loss is not None else None
        self.alpha = alpha
        #: Switched off by a stage scheduler; when False the teacher is not run at all.
        self.distill_active = self.distill_loss is not None
        self._check_classes()

    def _check_classes(self):
        size = getattr(getattr(self.model, 'patch_embed', None), 'img_size', None)
        n_teacher = self.teacher.num_classes(size=size)
        if n_teacher != self.num_classes:
            raise ValueError(f'teacher predicts {n_teacher} classes but the student '
                             f'{self.num_classes}; set num_classes of both to the same value')

    def teacher_logits(self, inputs):
        pre = self.data_preprocessor
        mean = pre.mean if getattr(pre, '_enable_normalize', False) else None
        std = pre.std if getattr(pre, '_enable_normalize', False) else None
        return self.teacher(inputs, mean, std)

    def loss(self, inputs, data_samples):
        cls_logits, dist_logits = self.heads(inputs)
        base = self.criterion(cls_logits, self.targets(data_samples))
        if not self.distill_active:
            return dict(loss_cls=base)
        student_logits = dist_logits if dist_logits is not None else cls_logits
        distill = self.distill_loss(student_logits, self.teacher_logits(inputs))
        return dict(loss_cls=(1 - self.alpha) * base, loss_distill=self.alpha * distill)
