"""Top-k accuracy of the joint prediction and of each DeiT head."""
import torch
from mmengine.evaluator import BaseMetric

from kdzoo.registry import METRICS

HEADS = (('joint', 'pred_score'), ('cls', 'cls_score'), ('dist', 'dist_score'))
#: The field of a named teacher's ranks: ``teacher_rank_<name>`` -> ``teacher/<name>/top<k>``.
NAMED_RANK = 'teacher_rank_'


@METRICS.register_module()
class HeadsAccuracy(BaseMetric):
    """Top-k accuracy (%) of the joint classifier (``joint/top1``) and, for students with a
    distillation token, of the class head (``cls/top1``) and the distillation head
    (``dist/top1``) separately. Single-head models report ``joint/top1`` only.

    When the model is a :class:`~kdzoo.models.Distiller` with a trained teacher, the
    teacher's own accuracy on the same samples is reported too (``teacher/top1``, ...),
    from the rank of each true class among the teacher's logits (``teacher_rank``), which
    the distiller computes once per sample and run.
    """

    default_prefix = ''

    def __init__(self, topk=(1, 5), collect_device='cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            result = {'gt_label': sample['gt_label'].cpu()}
            for _, key in HEADS:
                if key in sample:
                    result[key] = sample[key].cpu()
            for key in sample.keys():
                if key == 'teacher_rank' or key.startswith(NAMED_RANK):
                    result[key] = sample[key].cpu()
            self.results.append(result)

    def compute_metrics(self, results):
        labels = torch.cat([r['gt_label'] for r in results])
        metrics = {}
        for head, key in HEADS:
            if key not in results[0]:
                continue
            scores = torch.stack([r[key] for r in results])
            k_max = min(max(self.topk), scores.shape[1])
            top = scores.topk(k_max, dim=1).indices
            hits = top == labels[:, None]
            for k in self.topk:
                if k <= scores.shape[1]:
                    metrics[f'{head}/top{k}'] = hits[:, :k].any(1).float().mean().item() * 100
        n_classes = results[0]['pred_score'].shape[0]
        named = sorted(k for k in results[0] if k.startswith(NAMED_RANK))
        for key, prefix in [('teacher_rank', 'teacher')] + [
                (k, f'teacher/{k[len(NAMED_RANK):]}') for k in named]:
            if not all(key in r for r in results):
                continue
            ranks = torch.stack([r[key] for r in results])
            for k in self.topk:
                if k <= n_classes:
                    metrics[f'{prefix}/top{k}'] = (ranks < k).float().mean().item() * 100
        return metrics
