"""Image synthesis from a frozen teacher: DeepInversion with DF-DearKD's diversity term.

Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion",
CVPR 2020: images are optimised from noise so that the teacher classifies them as given
targets (cross-entropy), their feature statistics match those stored in the teacher's
BatchNorm layers (R_BN) and they are smooth and bounded (R_prior), with random jitter and
flips and a coarse-to-fine (multi-resolution) schedule. Chen et al., "DearKD", CVPR 2022,
section 4 (DF-DearKD) adds the boundary-preserving intra-divergence loss on the teacher's
features and uses 2000 iterations at 112 px then 2000 at 224 px, alpha_TV = 1e-4,
alpha_l2 = 1e-5, alpha_BN = 5e-2.
"""
from collections import namedtuple

import numpy as np
import torch
import torch.nn.functional as F

from kdzoo.losses.bn_statistics import BNStatisticsLoss
from kdzoo.losses.image_prior import ImagePriorLoss
from kdzoo.models.recorder import check_layer_names
from kdzoo.models.teacher import Teacher
from kdzoo.registry import MODELS

#: ``images``: (B, 3, H, W) uint8 RGB on the CPU. ``losses``: per-image (B,) float tensors
#: on the CPU for the final images: 'ce', 'prior', 'bn' and 'diversity' (batch terms,
#: weighted, the same for every image), 'total' (whose mean is the optimised objective),
#: 'target_prob' (teacher's probability of the target) and 'prediction' (teacher's argmax).
#: ``history``: the batch's mean cross-entropy at every iteration, all stages in order.
SynthesisResult = namedtuple('SynthesisResult', 'images losses history')

STAGE_KEYS = ('size', 'iterations', 'jitter', 'lr')
#: The terms passed to a ``progress`` callback of :meth:`DeepInversionSynthesizer.synthesize`.
PROGRESS_TERMS = ('loss', 'ce', 'prior', 'bn', 'diversity')


def batch_seed(seed, batch_index):
    """A 32-bit seed for batch ``batch_index`` of a run seeded with ``seed``: every batch
    draws its own noise, whichever process synthesises it and in whatever order."""
    return int(np.random.SeedSequence([int(seed), int(batch_index)]).generate_state(1)[0])


def check_stages(stages):
    """Validate the multi-resolution schedule; returns it as a list of dicts."""
    if not isinstance(stages, (list, tuple)) or not stages:
        raise ValueError(f'stages must be a non-empty list of dict(size=..., iterations=...), '
                         f'got {stages!r}')
    out, previous = [], 0
    for i, stage in enumerate(stages):
        stage = dict(stage)
        unknown = set(stage) - set(STAGE_KEYS)
        if unknown or 'size' not in stage or 'iterations' not in stage:
            raise ValueError(f'stages[{i}] = {stage}: needs size and iterations; allowed keys '
                             f'{STAGE_KEYS}')
        size, iters = stage['size'], stage['iterations']
        if not isinstance(size, int) or size < 2 or size < previous:
            raise ValueError(f'stages[{i}].size must be an integer >= 2 and not below the '
                             f'previous stage\'s ({previous}), got {size!r}')
        if not isinstance(iters, int) or iters < 0:
            raise ValueError(f'stages[{i}].iterations must be a non-negative integer, '
                             f'got {iters!r}')
        if stage.get('jitter', 0) < 0 or stage.get('jitter', 0) >= size:
            raise ValueError(f'stages[{i}].jitter must be in [0, size), got {stage["jitter"]}')
        out.append(stage)
        previous = size
    return out


@MODELS.register_module()
class DeepInversionSynthesizer:
    """Optimises a batch of images for target labels against a frozen teacher.

    Per iteration: loss = mean_i(alpha_ce * CE(f(x~_i), y_i) + R_prior(x_i)) +
    alpha_bn * R_BN + L_div, where x~ is x rolled by up to ``jitter`` pixels and flipped
    with probability 0.5, R_BN is :class:`BNStatisticsLoss` over the teacher's BatchNorm
    layers, R_prior :class:`ImagePriorLoss` and L_div the configured diversity loss
    (:class:`IntraDivergenceLoss`) on the input of ``feature_layer``. Images live in the
    teacher's normalised space, are clipped to the range of valid pixels after every step
    and are optimised with Adam under a cosine learning-rate decay (restarted per stage).

    Args:
        stages: list of ``dict(size, iterations[, jitter][, lr])``; each stage starts from
            the previous stage's images resized (``upsample`` mode) to its size.
        mean, std: the teacher's input normalisation, RGB on the 0-255 scale.
        lr, betas, eta_min: Adam's learning rate and betas, and the cosine floor.
        alpha_ce, alpha_bn, first_bn_multiplier: weights of CE and R_BN, and the factor of
            the first BatchNorm layer inside R_BN.
        alpha_tv, alpha_tv_l1, alpha_l2: weights of the L2 and L1 total variation and of
            the image's L2 norm.
        diversity: config of the diversity loss called as ``loss(features, labels)``, or
            None. Needs ``feature_layer``.
        feature_layer: name (in ``named_modules()`` of the teacher network) of the layer
            whose *input* is the embedding, e.g. 'fc' of CifarResNet, 'head.fc' of timm's
            RegNetY.
        jitter: default roll of every stage, in pixels; flip: random horizontal flips.
        bf16: run the teacher under bf16 autocast (the images, their prior and the
            BatchNorm statistics' distances stay float32); tools/synthesize.py sets it
            from the run's precision (``env_cfg.precision``) when the config leaves it None.
        seed: base seed; batch b of a run uses :func:`batch_seed` (seed, b).
    """

    def __init__(self, stages, mean, std, lr=0.25, betas=(0.5, 0.9), eta_min=0.0,
                 alpha_ce=1.0, alpha_bn=5e-2, first_bn_multiplier=10.0, alpha_tv=1e-4,
                 alpha_tv_l1=0.0, alpha_l2=1e-5, diversity=None, feature_layer=None,
                 jitter=0, flip=True, upsample='bilinear', bf16=None, seed=0):
        self.stages = check_stages(stages)
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f'mean and std need one value per channel, std > 0; got {mean}, '
                             f'{std}')
        if lr <= 0 or not 0 <= eta_min < lr:
            raise ValueError(f'need lr > 0 and 0 <= eta_min < lr, got {lr}, {eta_min}')
        if diversity is not None and feature_layer is None:
            raise ValueError('the diversity loss needs feature_layer (the layer whose input '
                             "is the teacher's embedding, e.g. 'fc')")
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.lr, self.betas, self.eta_min = lr, tuple(betas), eta_min
        self.alpha_ce, self.alpha_bn = alpha_ce, alpha_bn
        self.bn_loss = BNStatisticsLoss(first_bn_multiplier)
        self.prior = ImagePriorLoss(alpha_tv, alpha_tv_l1, alpha_l2)
        self.diversity = MODELS.build(diversity) if diversity is not None else None
        self.feature_layer = feature_layer
        self.jitter, self.flip, self.upsample = jitter, flip, upsample
        self.bf16, self.seed = bool(bf16), seed
        self._features = None
        self._channels_last = False

    @property
    def size(self):
        return self.stages[-1]['size']

    def _bounds(self, device):
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        return mean, std, (0.0 - mean) / std, (255.0 - mean) / std

    def _record_features(self, module, inputs):
        self._features = inputs[0]

    def _augment(self, x, jitter, generator):
        if jitter:
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        if self.flip and torch.rand(1, generator=generator).item() < 0.5:
            x = torch.flip(x, dims=(3,))
        return x

    def _objective(self, net, inputs, images, labels):
        if self._channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=inputs.device.type, dtype=torch.bfloat16,
                            enabled=self.bf16):
            logits = net(inputs).float()
        ce = F.cross_entropy(logits, labels, reduction='none')
        bn = self.alpha_bn * self.bn_loss()
        zero = bn * 0.0
        div = zero
        if self.diversity is not None:
            if self._features is None:
                raise RuntimeError(f'feature layer {self.feature_layer!r} did not run')
            div = self.diversity(self._features.flatten(1).float(), labels)
        self._features = None  # no activation outlives its step
        prior = self.prior(images)
        total = self.alpha_ce * ce + prior + bn + div
        return dict(loss=total.mean(), ce=ce, prior=prior, bn=bn, diversity=div, total=total,
                    logits=logits.detach())

    def synthesize(self, teacher, labels, batch_index=0, progress=None):
        """Images for ``labels`` (B,) from the teacher (a :class:`Teacher` or a plain
        classifier; its parameters receive no gradient). Returns :data:`SynthesisResult`.

        ``progress``, if given, is called after every iteration as ``progress(stage,
        iteration, losses)``: the stage's index, the iteration's number in it (from 1) and
        the batch means of that step's terms as detached 0-d tensors ('loss', the
        optimised objective, and its parts 'ce' (unweighted), 'prior', 'bn',
        'diversity'), left on the device so that a caller reads them only when it shows
        them."""
        net = teacher.model if isinstance(teacher, Teacher) else teacher
        # A teacher in channels_last (Teacher(channels_last=True)) gets its inputs so.
        self._channels_last = bool(getattr(teacher, 'channels_last', False))
        device = next(net.parameters()).device
        labels = torch.as_tensor(labels, dtype=torch.long).to(device)
        if labels.dim() != 1 or len(labels) == 0:
            raise ValueError(f'labels must be a non-empty 1-d tensor, got {tuple(labels.shape)}')
        mean, std, low, high = self._bounds(device)
        generator = torch.Generator().manual_seed(batch_seed(self.seed, batch_index))
        first = self.stages[0]['size']
        x = torch.randn(len(labels), len(self.mean), first, first, generator=generator)
        x = torch.maximum(torch.minimum(x.to(device), high), low)
        handles = []
        if self.feature_layer is not None:
            check_layer_names(net, [self.feature_layer], owner='teacher')
            layer = dict(net.named_modules())[self.feature_layer]
            handles.append(layer.register_forward_pre_hook(self._record_features))
        was_training = net.training
        net.eval()
        history = []
        try:
            with self.bn_loss.attached(net):
                for i, stage in enumerate(self.stages):
                    if i > 0 and stage['size'] != x.shape[-1]:
                        x = self._resize(x.detach(), stage['size'], low, high)
                    x = self._run_stage(net, x.detach(), labels, stage, generator, low, high,
                                        history, progress, i)
                with torch.no_grad():
                    final = self._objective(net, x, x, labels)
        finally:
            for handle in handles:
                handle.remove()
            self._features = None
            net.train(was_training)
        probs = final['logits'].softmax(dim=1)
        batch = len(labels)
        losses = dict(ce=final['ce'], prior=self.prior(x.detach()),
                      bn=final['bn'].detach().expand(batch), total=final['total'],
                      diversity=final['diversity'].detach().expand(batch),
                      target_prob=probs.gather(1, labels[:, None]).squeeze(1),
                      prediction=probs.argmax(dim=1))
        images = (x.detach() * std + mean).round().clamp(0, 255).to(torch.uint8)
        history = torch.stack(history).tolist() if history else []
        return SynthesisResult(images.cpu(), {k: v.cpu() for k, v in losses.items()}, history)

    def _resize(self, x, size, low, high):
        corners = dict(align_corners=False) if self.upsample in ('bilinear', 'bicubic') else {}
        x = F.interpolate(x, size=(size, size), mode=self.upsample, **corners)
        # Bicubic overshoots; the next stage must start from valid pixels too.
        return torch.maximum(torch.minimum(x, high), low)

    def _run_stage(self, net, x, labels, stage, generator, low, high, history,
                   progress=None, index=0):
        x.requires_grad_(True)
        iterations = stage['iterations']
        optimizer = torch.optim.Adam([x], lr=stage.get('lr', self.lr), betas=self.betas)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(iterations, 1), eta_min=self.eta_min)
        jitter = stage.get('jitter', self.jitter)
        for iteration in range(1, iterations + 1):
            inputs = self._augment(x, jitter, generator)
            step = self._objective(net, inputs, x, labels)
            # Gradients for the images only: the teacher's parameters never get a .grad.
            (grad,) = torch.autograd.grad(step['loss'], [x])
            x.grad = grad
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                x.copy_(torch.maximum(torch.minimum(x, high), low))
            history.append(step['ce'].detach().mean())
            if progress is not None:
                progress(index, iteration,
                         {k: step[k].detach().mean() for k in PROGRESS_TERMS})
        return x
