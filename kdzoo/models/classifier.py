"""Plain supervised training of any classifier: CNN teachers and students without a teacher."""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from kdzoo.registry import MODELS


@MODELS.register_module()
class Classifier(BaseModel):
    """An mmengine model around one network trained with the base criterion.

    Args:
        model: config of the network (any registered model, e.g. a DeiT student or a
            CifarResNet). A network with a ``forward_heads`` method (DeiT) is evaluated
            per head as well as jointly.
        criterion: the base criterion on true labels (default: plain cross-entropy).
        data_preprocessor: normalisation and batch augmentations (mixup/cutmix).
    """

    def __init__(self, model, criterion=None, data_preprocessor=None, init_cfg=None):
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.model = MODELS.build(model) if isinstance(model, dict) else model
        self.criterion = MODELS.build(criterion or dict(type='LabelSmoothCrossEntropy'))

    @property
    def num_classes(self):
        return self.model.num_classes

    def heads(self, inputs):
        """(class logits, distillation logits or None)."""
        if hasattr(self.model, 'forward_heads'):
            return self.model.forward_heads(inputs)
        return self.model(inputs), None

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.model(inputs)
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
