"""The frozen teacher of a distillation run."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger

from kdzoo.registry import MODELS
from .checkpoint import download_checkpoint, load_state_dict_file, resolve_checkpoint

SOURCES = ('timm', 'torchvision', 'mmpretrain')


def build_classifier(model, num_classes=None, pretrained=False):
    """Build a classifier from 'timm:NAME', 'torchvision:NAME', 'mmpretrain:NAME' or a config
    dict of any model registered in kdzoo (or mmpretrain).

    ``pretrained=True`` asks the source for the weights it publishes for NAME: timm's
    ``create_model(pretrained=True)`` (NAME may carry a tag, 'regnety_160.deit_in1k'),
    torchvision's ``DEFAULT`` weights, the weights of mmpretrain's model index. The
    torchvision and mmpretrain files go through :func:`download_checkpoint` (hash checked)
    and load with ``weights_only=True``, as timm's own loader does.
    """
    if isinstance(model, dict):
        if pretrained:
            raise ValueError('pretrained=True needs a teacher named "SOURCE:NAME" with SOURCE '
                             f'one of {SOURCES}; a config dict teacher names its weights '
                             'with checkpoint=')
        cfg = dict(model)
        if num_classes is not None:
            cfg.setdefault('num_classes', num_classes)
        return MODELS.build(cfg)
    if not isinstance(model, str) or ':' not in model:
        raise ValueError(f'teacher model {model!r} must be a config dict or "SOURCE:NAME" '
                         f'with SOURCE one of {SOURCES}')
    source, name = model.split(':', 1)
    kwargs = {} if num_classes is None else dict(num_classes=num_classes)
    if source == 'timm':
        import timm
        if not timm.is_model(name):
            raise ValueError(f'timm has no model {name!r}')
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    if source == 'torchvision':
        import torchvision
        net = torchvision.models.get_model(name, weights=None, **kwargs)
        if pretrained:
            url = torchvision.models.get_model_weights(name).DEFAULT.url
            load_weights(net, download_checkpoint(url), url)
        return net
    if source == 'mmpretrain':
        from mmpretrain import get_model
        head = {} if num_classes is None else dict(head=dict(num_classes=num_classes))
        net = get_model(name, pretrained=False, **head)
        if pretrained:
            from mmpretrain.apis import ModelHub
            url = ModelHub.get(name).weights
            if not url:
                raise ValueError(f'mmpretrain publishes no weights for {name!r}; give the '
                                 'teacher a checkpoint')
            load_weights(net, download_checkpoint(url), url)
        return net
    raise ValueError(f'unknown teacher source {source!r}; choose one of {SOURCES}')


def load_weights(net, path, name=None):
    """Load a checkpoint file into ``net``; every key must match."""
    missing, unexpected = net.load_state_dict(load_state_dict_file(path), strict=False)
    if missing or unexpected:
        raise RuntimeError(f'teacher checkpoint {name or path!r} does not match the model: '
                           f'missing {missing[:5]}, unexpected {unexpected[:5]}')


def check_weights_named(model, checkpoint, pretrained, random_init):
    """A teacher must say where its weights come from: exactly one of a checkpoint,
    the source's pretrained weights, or ``random_init=True``."""
    named = [k for k, v in (('checkpoint', checkpoint is not None),
                            ('pretrained', bool(pretrained)),
                            ('random_init', bool(random_init))) if v]
    if len(named) > 1:
        raise ValueError(f'teacher {model!r}: {" and ".join(named)} exclude each other; give '
                         'one of checkpoint=, pretrained=True or random_init=True')
    if not named:
        raise ValueError(
            f'teacher {model!r} names no weights, so it would be randomly initialised. Set '
            'model.teacher.checkpoint to a checkpoint file, an mmengine work dir or an '
            'http(s):// or file:// URL; or pretrained=True for the weights that timm, '
            'torchvision or mmpretrain publish for a "SOURCE:NAME" teacher; or '
            'random_init=True for a random teacher on purpose')


@MODELS.register_module()
class Teacher(nn.Module):
    """A frozen classifier that supplies the distillation targets.

    It never receives gradients, stays in eval mode whatever ``train()`` is called with,
    and adapts the student's input to its own: the batch is un-normalised with the
    student's mean/std and normalised with the teacher's, then resized to ``img_size``.

    Args:
        model: 'timm:regnety_160', 'torchvision:resnet50', 'mmpretrain:NAME' or a config dict.
        checkpoint: weights to load (timm, torchvision or mmengine format): a file, an
            mmengine work dir (the last checkpoint saved there), or an http(s):// or file://
            URL, downloaded once into torch.hub's cache (hash checked when the file name
            carries one, ``regnety_160-a5fe301d.pth``).
        pretrained: the weights the source publishes for a 'SOURCE:NAME' teacher (see
            :func:`build_classifier`); not together with ``checkpoint``.
        random_init: a randomly initialised teacher, asked for explicitly (tests, cost
            measurements). A teacher must name exactly one of ``checkpoint``,
            ``pretrained`` and ``random_init``.
        num_classes: class count to build the model with (default: the model's own; with
            ``pretrained``, it must equal the published weights' count).
        mean, std: the teacher's input normalisation (0-255 scale); None keeps the student's.
        img_size: the teacher's input resolution; None keeps the student's.
        bf16: True runs the teacher under bf16 autocast, False in float32; None (the
            default) follows the run (bf16 under a bf16 run's autocast, else float32).
        channels_last: run a CNN teacher in channels-last memory format.
        view: ``dict(size=S)``: in training the teacher sees its own view of each sample,
            the same crop, flip, augmentations and mixing at S pixels
            (:mod:`kdzoo.datasets.views`); in validation the student's images resized to
            S (not together with ``img_size``). ``dict(pipeline=[...])``: the sample
            through a pipeline of its own, whose transforms draw as the student's
            transforms of the same type and rank do. The training set must go through
            ``ReplaySampler`` (kdzoo's Runner then makes the views).
    """

    def __init__(self, model, checkpoint=None, pretrained=False, random_init=False,
                 num_classes=None, mean=None, std=None, img_size=None, bf16=None,
                 channels_last=False, view=None):
        super().__init__()
        check_weights_named(model, checkpoint, pretrained, random_init)
        #: The teacher's view of the training samples (None: the student's batch), and
        #: the size of a view at another size (None for a view with its own pipeline).
        self.view_spec, self.view = None, None
        if view is not None:
            from kdzoo.datasets.views import check_view, view_size
            self.view_spec = dict(check_view(view, f'teacher {model!r}'))
            if 'size' in view:
                if img_size is not None:
                    raise ValueError(f'teacher {model!r}: give view=dict(size=...) or img_size, '
                                     'not both (a view already gives the teacher its size)')
                self.view = view_size(view, f'teacher {model!r}')
                if self.view[0] != self.view[1]:
                    raise ValueError(f'teacher {model!r}: a teacher view is square, got size '
                                     f'{self.view}')
                img_size = self.view[0]
        source = checkpoint
        if checkpoint is not None:
            checkpoint = resolve_checkpoint(checkpoint)
        # Published weights come with their own head: the class count is checked, not set.
        # In eval mode before any dry forward, which would otherwise move BatchNorm statistics.
        self.model = build_classifier(model, None if pretrained else num_classes,
                                      pretrained).eval()
        self.img_size = img_size
        logger = MMLogger.get_current_instance()
        if pretrained:
            if num_classes is not None and self.num_classes() != num_classes:
                raise ValueError(f'teacher {model!r}: its pretrained weights predict '
                                 f'{self.num_classes()} classes, num_classes={num_classes} '
                                 'was asked; give a checkpoint trained for those classes '
                                 'instead')
            logger.info(f'teacher weights: the pretrained weights of {model}')
        elif checkpoint is not None:
            load_weights(self.model, checkpoint, source)
            logger.info(f'teacher weights loaded from {source}'
                        + (f' ({checkpoint})' if checkpoint != source else ''))
        self.checkpoint = checkpoint
        self.pretrained = bool(pretrained)
        self.random_init = bool(random_init)
        self.bf16 = bf16
        self.channels_last = channels_last
        self.mean = mean
        self.std = std
        self.model.requires_grad_(False)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        super().train(False)

    @property
    def has_weights(self):
        """Whether the weights are trained ones (a checkpoint or pretrained), not random."""
        return not self.random_init

    def train(self, mode=True):
        # The teacher's BatchNorm statistics and dropout must not change during distillation.
        return super().train(False)

    def init_weights(self):
        # The runner's weight initialisation must not overwrite the loaded checkpoint.
        pass

    def layer(self, name):
        """The teacher network's submodule ``name`` (as in ``named_modules()``); a wrong
        name raises a ValueError listing the available ones."""
        from .recorder import check_layer_names
        check_layer_names(self.model, [name], owner='teacher')
        return dict(self.model.named_modules())[name]

    @torch.no_grad()
    def num_classes(self, in_chans=3, size=None):
        """Number of output classes (from the model's attribute, else one dry forward)."""
        n = getattr(self.model, 'num_classes', None)
        if isinstance(n, int):
            return n
        size = self.img_size or size or 224
        param = next(self.model.parameters())
        return self.model(torch.zeros(1, in_chans, size, size, device=param.device)).shape[-1]

    def adapt_input(self, x, student_mean, student_std):
        if self.mean is not None or self.std is not None:
            s_mean = torch.as_tensor(student_mean, device=x.device).view(1, -1, 1, 1)
            s_std = torch.as_tensor(student_std, device=x.device).view(1, -1, 1, 1)
            t_mean = torch.as_tensor(self.mean if self.mean is not None else student_mean,
                                     device=x.device).view(1, -1, 1, 1)
            t_std = torch.as_tensor(self.std if self.std is not None else student_std,
                                    device=x.device).view(1, -1, 1, 1)
            x = (x * s_std + s_mean - t_mean) / t_std
        if self.img_size is not None and x.shape[-1] != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode='bicubic',
                              align_corners=False)
        return x

    @torch.no_grad()
    def forward(self, x, student_mean=None, student_std=None):
        """Teacher logits (float32) for a batch normalised for the student."""
        x = self.adapt_input(x, student_mean, student_std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.bf16 is None:  # the run's precision: the autocast state around this call
            out = self.model(x)
        else:
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16,
                                enabled=self.bf16):
                out = self.model(x)
        return out.float()

    @torch.no_grad()
    def check_takes(self, size):
        """Raise a ValueError when the network cannot take (size x size) images."""
        param = next(self.model.parameters())
        was = self.model.training
        self.model.eval()
        try:
            self.model(torch.zeros(1, 3, size, size, device=param.device))
        except Exception as error:
            raise ValueError(f'the teacher ({type(self.model).__name__}) cannot take its view '
                             f'of {size} x {size} pixels: {error}') from error
        finally:
            self.model.train(was)
