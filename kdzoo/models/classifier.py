"""Plain supervised training of any classifier: CNN teachers and students without a teacher."""
import math
from functools import partial

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.model import BaseModel

from kdzoo.registry import MODELS


def build_network(cfg):
    """A network from a config dict or a 'timm:NAME' / 'torchvision:NAME' string."""
    if isinstance(cfg, str):
        from .teacher import build_classifier
        return build_classifier(cfg)
    return MODELS.build(cfg) if isinstance(cfg, dict) else cfg


def compile_options(compile):
    """None (no compilation) or the keyword arguments of ``torch.compile``."""
    if compile is False or compile is None:
        return None
    if compile is True:
        return {}
    if isinstance(compile, dict):
        return dict(compile)
    raise ValueError(f'compile must be True, False or a dict of torch.compile arguments, got '
                     f'{compile!r}')


def has_dist_head(net):
    """Whether ``net`` has a distillation head (kdzoo's or timm's distilled DeiT)."""
    if hasattr(net, 'forward_heads'):
        return bool(getattr(net, 'distilled', False))
    return getattr(net, 'head_dist', None) is not None


def network_heads(net, inputs):
    """(class logits, distillation logits or None) of any classifier network."""
    if hasattr(net, 'forward_heads'):
        return net.forward_heads(inputs)
    if has_dist_head(net):
        # timm's distilled DeiT averages its heads outside distilled training mode.
        tokens = net.forward_features(inputs)
        return net.head(tokens[:, 0]), net.head_dist(tokens[:, 1])
    return net(inputs), None


@MODELS.register_module()
class Classifier(BaseModel):
    """An mmengine model around one network trained with the base criterion.

    Args:
        student: config of the network being trained (any registered model, e.g. a DeiT
            student or a CifarResNet, or 'timm:NAME' / ``dict(type='TimmModel', ...)``).
            It is called ``student`` here too, so that a :class:`Distiller` config can
            inherit a plain one; when a teacher itself is trained, it is the teacher's
            network. A network with two heads (kdzoo's DeiT, timm's distilled DeiT) is
            evaluated per head as well as jointly.
        criterion: the base criterion on true labels (default: plain cross-entropy).
        data_preprocessor: normalisation and batch augmentations (mixup/cutmix).
        compile: compile the student's forward (its heads, in training and at test time)
            with ``torch.compile``, leaving the module as it is (parameter names and
            checkpoints stay the same): True, or a dict of ``torch.compile`` arguments
            (e.g. ``dict(mode='max-autotune')``). Off by default.
        channels_last: keep a CNN student and its input batches in channels-last memory
            format, which oneDNN's convolutions prefer (a ResNet-20 CIFAR train step at
            batch 128 on an AMD EPYC: 0.207 -> 0.172 s in bf16, 0.369 -> 0.267 s in
            float32). Parameter names and checkpoints do not change.

    Checkpoints saved before ``model`` was renamed ``student`` (keys ``model.*``) load
    unchanged.
    """

    def __init__(self, student=None, criterion=None, data_preprocessor=None, init_cfg=None,
                 compile=False, channels_last=False, **kwargs):
        if 'model' in kwargs:
            raise TypeError(f"{type(self).__name__}: the network's config is now called "
                            "'student' (model=dict(student=...)), not 'model'")
        if kwargs:
            raise TypeError(f'{type(self).__name__} got unexpected arguments {sorted(kwargs)}')
        if student is None:
            raise TypeError(f'{type(self).__name__} needs a student config')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student = build_network(student)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.student.to(memory_format=torch.channels_last)
        self.criterion = MODELS.build(criterion or dict(type='LabelSmoothCrossEntropy'))
        self.compile_cfg = compile_options(compile)
        self._compiled_heads = None
        self._register_load_state_dict_pre_hook(self._rename_legacy_keys)
        if self.compile_cfg is not None and type(self) is Classifier:
            self.compile_student()

    def compile_student(self):
        """Compile the student's heads (its training and test forward) with
        ``torch.compile``; the module itself is untouched, so its parameter names stay."""
        self._compiled_heads = torch.compile(partial(network_heads, self.student),
                                             **self.compile_cfg)

    def _rename_legacy_keys(self, state_dict, prefix, *args):
        for key in [k for k in state_dict if k.startswith(prefix + 'model.')]:
            state_dict[prefix + 'student.' + key[len(prefix + 'model.'):]] = state_dict.pop(key)

    @property
    def num_classes(self):
        return self.student.num_classes

    def parse_losses(self, losses):
        """mmengine's sum of the loss terms, stopped at the first non-finite term: before
        the backward pass and the optimizer step, so no weight (and no checkpoint) takes
        it in."""
        loss, log_vars = super().parse_losses(losses)
        # One device sync for all terms, before the backward pass.
        values = dict(zip(log_vars, torch.stack([v.detach().float()
                                                 for v in log_vars.values()]).tolist()))
        iteration = MessageHub.get_current_instance().get_info('iter')
        if not all(math.isfinite(v) for v in values.values()):
            bad = {k: v for k, v in values.items() if k != 'loss' and not math.isfinite(v)}
            where = '' if iteration is None else f' at iteration {iteration + 1}'
            last = getattr(self, '_last_finite', None)
            before = ('no finite step before it' if last is None else
                      f'the last finite ones, at iteration {last[0]}: ' +
                      ', '.join(f'{k} {v:.4g}' for k, v in last[1].items()))
            raise FloatingPointError(
                f'non-finite loss{where}: ' + ', '.join(f'{k} = {v}' for k, v in
                                                        (bad or {'loss': values['loss']}).items())
                + f' (all terms: {values}); {before}. Training stopped before this step '
                'changed any weight; lower the learning rate, check the inputs, or resume '
                'from the last checkpoint')
        self._last_finite = (None if iteration is None else iteration + 1, values)
        return loss, log_vars

    def heads(self, inputs):
        """(class logits, distillation logits or None)."""
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        if self._compiled_heads is not None:
            return self._compiled_heads(inputs)
        return network_heads(self.student, inputs)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            if self.channels_last and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            return self.student(inputs)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    @staticmethod
    def targets(data_samples):
        """Mixed soft targets (N, K) when batch augmentation made them, else labels (N,)."""
        if 'gt_score' in data_samples[0]:
            return torch.stack([s.gt_score for s in data_samples])
        return torch.cat([s.gt_label for s in data_samples])

    def loss(self, inputs, data_samples):
        cls_logits, _ = self.heads(inputs)
        return dict(loss_cls=self.criterion(cls_logits, self.targets(data_samples)))

    def predict(self, inputs, data_samples=None):
        cls_logits, dist_logits = self.heads(inputs)
        return self.to_data_samples(cls_logits, dist_logits, data_samples)

    @staticmethod
    def to_data_samples(cls_logits, dist_logits, data_samples):
        """Joint prediction as pred_score, each head's scores as cls_score / dist_score."""
        from mmpretrain.structures import DataSample
        if data_samples is None:
            data_samples = [DataSample() for _ in range(cls_logits.shape[0])]
        cls_scores = F.softmax(cls_logits.float(), dim=-1)
        if dist_logits is None:
            joint = cls_scores
        else:
            dist_scores = F.softmax(dist_logits.float(), dim=-1)
            joint = F.softmax((cls_logits.float() + dist_logits.float()) / 2, dim=-1)
        for i, sample in enumerate(data_samples):
            sample.set_pred_score(joint[i]).set_pred_label(joint[i].argmax(keepdim=True))
            if dist_logits is not None:
                sample.set_field(cls_scores[i], 'cls_score', field_type='data')
                sample.set_field(dist_scores[i], 'dist_score', field_type='data')
        return data_samples
