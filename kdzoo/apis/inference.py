"""Classify images with a trained student, as mmpretrain's ``get_model`` /
``inference_model`` / ``ImageClassificationInferencer`` do for its models.

    model = kdzoo.get_model('deit_micro_distilled_cifar10', 'work_dirs/.../epoch_20.pth')
    result = kdzoo.inference_model(model, 'cat.jpg')   # or an HxWx3 uint8 RGB array
    result['pred_class'], result['pred_score']

The config's test pipeline is applied (its ``LoadImageFromFile`` for paths; arrays enter
after it, as in mmpretrain's inferencer), completed by :func:`inference_pipeline_cfg` so
that an image of any size reaches the model's input size, and its data preprocessor
normalises the batch.
"""
import json
import os
import os.path as osp

import numpy as np
import torch

from .model import ConfigError, load_config

CHANNEL_ORDERS = ('rgb', 'bgr')
#: Image files that a folder given to ``tools/infer.py`` contributes (any case).
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff',
                  '.webp')
#: Transforms that change the image size; a test pipeline without any is completed.
_SIZE_STEPS = ('Resize', 'ResizeEdge', 'CenterCrop', 'RandomResize', 'RandomCrop',
               'RandomResizedCrop', 'EfficientNetCenterCrop', 'EfficientNetRandomCrop',
               'Pad')


def test_pipeline_cfg(cfg):
    """The config's test pipeline (test, else val dataloader, else ``test_pipeline``) as
    a list of plain dicts."""
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        pipeline = loader and loader.get('dataset', {}).get('pipeline')
        if pipeline:
            break
    else:
        pipeline = cfg.get('test_pipeline')
    if not pipeline:
        raise ConfigError('the config has no test pipeline (test_dataloader.dataset.pipeline,'
                          ' val_dataloader.dataset.pipeline or test_pipeline)')
    return [t.to_dict() if hasattr(t, 'to_dict') else dict(t) for t in pipeline]


def step_type(step):
    """A transform's type without its registry scope ('mmpretrain.ResizeEdge' ->
    'ResizeEdge')."""
    return str(step.get('type', '')).rsplit('.', 1)[-1]


def _pair(size):
    """(h, w) of an int or a (h, w) sequence."""
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (
        int(size[0]), int(size[1]))


def input_size_of(cfg, net=None):
    """The (h, w) that the student takes, or None when nothing fixes it: the network's
    patch grid (``patch_embed.img_size``), else the crop of the config's test pipeline,
    else the crop of its training pipeline (``RandomCrop`` / ``RandomResizedCrop``), the
    size a CNN student was trained at."""
    pe = getattr(net, 'patch_embed', None)
    if pe is not None and getattr(pe, 'img_size', None) is not None:
        return _pair(pe.img_size)
    pipelines = [test_pipeline_cfg(cfg)]
    train = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    if train.get('pipeline'):
        pipelines.append([dict(t) for t in train['pipeline']])
    for steps in pipelines:
        for step in reversed(steps):
            # mmcv's CenterCrop and Resize take (w, h); mmpretrain's RandomCrop and
            # RandomResizedCrop (h, w)
            size = step.get('crop_size') or step.get('scale')
            kind = step_type(step)
            if not size or kind not in ('CenterCrop', 'Resize', 'RandomCrop',
                                        'RandomResizedCrop'):
                continue
            if kind in ('CenterCrop', 'Resize') and not isinstance(size, int):
                size = size[::-1]
            return _pair(size)
    return None


def inference_pipeline_cfg(cfg, input_size=None):
    """The test pipeline that brings an image of any size to ``input_size`` (h, w).

    A pipeline that already resizes or crops is kept as it is (ImageNet's: the short side
    to ``crop / crop_pct``, then a centre crop). One that does not (CIFAR's
    ``[LoadImageFromFile, PackInputs]``) gets, after its loader, the short side resized to
    the input size and a centre crop of the input size (timm's eval transform with
    ``crop_pct=1.0``: an image of another aspect ratio loses its borders, not its shape),
    or a plain resize for a non-square input size; bicubic, with Pillow, as timm does.
    An image already at the input size passes through unchanged, so it is classified
    exactly as without these steps. A ``ResizeEdge`` on the short side with no crop after
    it gets the centre crop. Without a known input size the pipeline is kept.
    """
    steps = test_pipeline_cfg(cfg)
    if input_size is None:
        return steps
    h, w = input_size
    kinds = [step_type(t) for t in steps]
    if not set(kinds) & set(_SIZE_STEPS):
        if h == w:
            added = [dict(type='ResizeEdge', scale=h, edge='short', backend='pillow',
                          interpolation='bicubic'),
                     dict(type='CenterCrop', crop_size=h)]
        else:
            added = [dict(type='Resize', scale=(w, h), backend='pillow',
                          interpolation='bicubic')]
        at = 1 if kinds and kinds[0] == 'LoadImageFromFile' else 0
        return steps[:at] + added + steps[at:]
    last = max(i for i, k in enumerate(kinds) if k in _SIZE_STEPS)
    if kinds[last] == 'ResizeEdge' and steps[last].get('edge', 'short') == 'short':
        crop = h if h == w else [w, h]  # mmcv's CenterCrop crop_size is (w, h)
        return steps[:last + 1] + [dict(type='CenterCrop', crop_size=crop)] + steps[last + 1:]
    return steps


def list_images(paths):
    """Image files of ``paths``: a file as given, a folder as every image file under it
    (recursively, extensions :data:`IMG_EXTENSIONS`, sorted). A path that does not exist,
    or a folder without images, is an error before any work."""
    files = []
    for path in paths:
        path = os.fspath(path)
        if osp.isdir(path):
            found = sorted(osp.join(root, f) for root, _, names in os.walk(path)
                           for f in names if f.lower().endswith(IMG_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f'folder {path!r} holds no image files '
                                        f'({", ".join(IMG_EXTENSIONS)})')
            files.extend(found)
        elif osp.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'{path!r} does not exist (give image files or folders '
                                    'of images)')
    return files


def class_names_of(cfg):
    """Class names: the config's ``classes``, its datasets' ``metainfo.classes`` or
    ``classes``, else mmpretrain's CIFAR-10 / ImageNet names for a CIFAR-10 / ImageNet
    data root of that class count (class folders sort in that order); None if unknown."""
    if cfg.get('classes'):
        return list(cfg['classes'])
    roots = []
    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset') or {}
        names = (dataset.get('metainfo') or {}).get('classes') or dataset.get('classes')
        if names and not isinstance(names, str):
            return list(names)
        roots.append(str(dataset.get('data_root', '')).lower())
    from mmpretrain.datasets.categories import CIFAR10_CATEGORIES, IMAGENET_CATEGORIES
    pre = cfg.get('data_preprocessor') or {}
    num_classes = pre.get('num_classes')
    for marker, names in (('cifar10', CIFAR10_CATEGORIES), ('imagenet', IMAGENET_CATEGORIES)):
        if num_classes == len(names) and any(marker in r.replace('-', '') for r in roots):
            return list(names)
    return None


def _exported(path):
    """The kdzoo entry of a ``tools/export.py --to kdzoo`` file, else None."""
    from kdzoo.models.checkpoint import read_checkpoint
    ckpt = read_checkpoint(path)
    return ckpt if isinstance(ckpt, dict) and isinstance(ckpt.get('kdzoo'), dict) else None


def get_model(model, checkpoint=None, device='cpu', cfg_options=None, random_init=False):
    """The student network of a config (a path, a shipped config name or a Config) with
    the weights of ``checkpoint`` (loaded strictly), in eval mode on ``device``; or the
    student of a ``tools/export.py --to kdzoo`` file, given alone.

    A config names no weights of its own, so without a checkpoint the student would be
    random: that takes ``random_init=True``, asked for on purpose (tests, cost
    measurements). The network carries ``_config`` (for the test pipeline and data
    preprocessing) and ``dataset_meta`` (``classes``), as mmpretrain's models do.
    """
    import kdzoo  # noqa: F401
    from mmengine.config import Config

    from .configs import find_config
    from .model import build_student
    if isinstance(model, str) and osp.isfile(model) and not model.endswith('.py'):
        entry = _exported(model)
        if entry is None:
            raise ConfigError(f'{model} is neither a config nor a file written by '
                              'tools/export.py --to kdzoo; give a config and the checkpoint')
        if checkpoint is not None or cfg_options or random_init:
            raise ConfigError('an exported file holds its weights and settings; give no '
                              'checkpoint, cfg_options or random_init with it')
        meta = entry['kdzoo']
        cfg = Config(dict(model=dict(student=json.loads(meta['student'])),
                          data_preprocessor=json.loads(meta['data_preprocessor']),
                          test_pipeline=json.loads(meta['test_pipeline']),
                          classes=json.loads(meta['classes'])))
        checkpoint = model
    else:
        name = model if isinstance(model, str) else 'the config'
        if checkpoint is not None and random_init:
            raise ConfigError(f'{name}: checkpoint and random_init exclude each other; give '
                              'one of checkpoint= or random_init=True')
        if checkpoint is None and not random_init:
            raise ConfigError(
                f'{name} names no weights, so the student would be randomly initialised. '
                'Give checkpoint= a file written by tools/train.py (or pass a file written '
                'by tools/export.py --to kdzoo alone); or random_init=True for a random '
                'student on purpose')
        cfg = load_config(model if isinstance(model, Config) else find_config(model),
                          cfg_options)
    net = build_student(cfg, checkpoint, device)
    net._config = cfg
    net.dataset_meta = dict(classes=class_names_of(cfg))
    return net


def _readable_image(path):
    """Whether OpenCV (mmcv's default decoder) recognises the file as an image, from its
    first bytes."""
    import cv2
    return cv2.haveImageReader(path)


class Predictor:
    """Batched image classification with a student and its config's test pipeline.

    Args:
        model: a network from :func:`get_model`, or what :func:`get_model` takes.
        checkpoint, device: passed to :func:`get_model` when ``model`` is not a network.
        batch_size: images per forward pass.
        channel_order: of numpy inputs, 'rgb' (PIL, imageio, matplotlib) or 'bgr'
            (OpenCV); image files are read by the pipeline's loader.

    Images may have any size: the pipeline is :func:`inference_pipeline_cfg` of the
    config for the model's input size (a config that resizes keeps its own steps; CIFAR's,
    which does not, resizes the short side to the input size and crops the centre; an
    image at the input size is unchanged).

    Calling it with one image (a path or an HxWx3 uint8 array) or a list of them returns
    one dict per image: ``pred_label``, ``pred_class`` (None when the config names no
    classes), ``pred_score`` and ``pred_scores`` (softmax of the joint classifier, the mean
    of the class and distillation logits for a student with a distillation token), and
    for such a student ``cls_scores`` and ``dist_scores`` (softmax of each head).
    """

    def __init__(self, model, checkpoint=None, device='cpu', batch_size=32,
                 channel_order='rgb'):
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f'channel_order must be one of {CHANNEL_ORDERS}, got '
                             f'{channel_order!r}')
        if isinstance(model, torch.nn.Module):
            if checkpoint is not None:
                raise ValueError('a built network already has its weights; give no checkpoint')
            if getattr(model, '_config', None) is None:
                raise ValueError('the network carries no config; build it with '
                                 'kdzoo.get_model(config, checkpoint)')
        else:
            model = get_model(model, checkpoint, device)
        self.model = model.eval()
        self.batch_size = int(batch_size)
        self.channel_order = channel_order
        self.classes = model.dataset_meta.get('classes')
        self.input_size = input_size_of(model._config, model)
        self._build_data(model._config)

    def _build_data(self, cfg):
        from mmcv.transforms import Compose
        from mmengine.registry import DefaultScope

        from kdzoo.registry import MODELS, TRANSFORMS
        steps = inference_pipeline_cfg(cfg, self.input_size)
        self.pipeline_cfg = steps
        if not steps or steps[0]['type'] not in ('LoadImageFromFile',
                                                 'mmpretrain.LoadImageFromFile'):
            raise ConfigError('the test pipeline does not start with LoadImageFromFile')
        pre = dict(cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor') or {})
        pre.pop('batch_augments', None)
        pre.setdefault('type', 'ClsDataPreprocessor')
        with DefaultScope.overwrite_default_scope('kdzoo'):
            self.load = TRANSFORMS.build(steps[0])
            self.pipeline = Compose([TRANSFORMS.build(t) for t in steps[1:]])
            self.preprocessor = MODELS.build(pre)
        device = next(self.model.parameters()).device
        self.preprocessor.to(device)

    def _check(self, inputs):
        accepted = 'an image path, an HxWx3 uint8 array, or a list of those'
        single = isinstance(inputs, (str, os.PathLike, np.ndarray))
        if not single and not isinstance(inputs, (list, tuple)):
            raise TypeError(f'inputs must be {accepted}; got {type(inputs).__name__}')
        items = [inputs] if single else list(inputs)
        if not items:
            raise ValueError(f'no inputs given; pass {accepted}')
        for i, item in enumerate(items):
            if isinstance(item, os.PathLike):
                items[i] = item = os.fspath(item)
            if isinstance(item, str):
                if osp.isdir(item):
                    raise IsADirectoryError(
                        f'input {i}: {item!r} is a folder; pass its image files '
                        '(kdzoo.apis.inference.list_images(folders) lists them)')
                if not osp.isfile(item):
                    raise FileNotFoundError(f'image {item!r} does not exist')
                if not _readable_image(item):
                    raise ValueError(f'input {i}: {item!r} is not an image file (JPEG, PNG, '
                                     'BMP, TIFF, WebP, ...)')
            elif isinstance(item, np.ndarray):
                if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
                    raise ValueError(f'input {i}: an HxWx3 uint8 array was expected, got '
                                     f'{item.dtype} {item.shape}')
            else:
                raise TypeError(f'input {i}: an image path or an HxWx3 uint8 array was '
                                f'expected, got {type(item).__name__}')
        return single, items

    def _prepare(self, item):
        if isinstance(item, str):
            results = self.load(dict(img_path=item))
        else:
            img = np.ascontiguousarray(item[..., ::-1] if self.channel_order == 'rgb'
                                       else item)  # the pipeline works in BGR, as mmcv reads
            results = dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return self.pipeline(results)

    @torch.no_grad()
    def forward(self, items):
        """(joint, class-head, distillation-head logits or None) of a list of inputs."""
        from mmengine.dataset import pseudo_collate

        from kdzoo.models.classifier import network_heads
        data = self.preprocessor(pseudo_collate([self._prepare(x) for x in items]), False)
        cls_logits, dist_logits = network_heads(self.model, data['inputs'])
        joint = cls_logits if dist_logits is None else (cls_logits + dist_logits) / 2
        return joint, cls_logits, dist_logits

    def __call__(self, inputs, batch_size=None):
        single, items = self._check(inputs)  # every input is checked before any work
        size = batch_size or self.batch_size
        results = []
        for start in range(0, len(items), size):
            joint, cls_logits, dist_logits = self.forward(items[start:start + size])
            scores = joint.float().softmax(-1).cpu().numpy()
            heads = {} if dist_logits is None else dict(
                cls_scores=cls_logits.float().softmax(-1).cpu().numpy(),
                dist_scores=dist_logits.float().softmax(-1).cpu().numpy())
            for i, row in enumerate(scores):
                label = int(row.argmax())
                result = dict(pred_label=label, pred_score=float(row[label]),
                              pred_class=self.classes[label] if self.classes else None,
                              pred_scores=row)
                result.update({k: v[i] for k, v in heads.items()})
                results.append(result)
        return results[0] if single else results


def inference_model(model, inputs, checkpoint=None, device='cpu', batch_size=32,
                    channel_order='rgb'):
    """Classify one image (a dict) or a list of images (a list of dicts) of any size with
    ``model`` (a network from :func:`get_model`, or a config with ``checkpoint``); see
    :class:`Predictor` for the inputs, the resizing and the keys."""
    return Predictor(model, checkpoint, device, batch_size, channel_order)(inputs)
