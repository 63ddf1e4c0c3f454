"""Classify images with a trained student, as mmpretrain's ``get_model`` /
``inference_model`` / ``ImageClassificationInferencer`` do for its models.

    model = kdzoo.get_model('deit_micro_distilled_cifar10', 'work_dirs/.../epoch_20.pth')
    result = kdzoo.inference_model(model, 'cat.jpg')   # or an HxWx3 uint8 RGB array
    result['pred_class'], result['pred_score']

The config's test pipeline is applied (its ``LoadImageFromFile`` for paths; arrays enter
after it, as in mmpretrain's inferencer) and its data preprocessor normalises the batch.
"""
import json
import os.path as osp

import numpy as np
import torch

from .model import ConfigError, load_config

CHANNEL_ORDERS = ('rgb', 'bgr')


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


def get_model(model, checkpoint=None, device='cpu', cfg_options=None):
    """The student network of a config (a path, a shipped config name or a Config) with
    the weights of ``checkpoint`` (loaded strictly), in eval mode on ``device``; or the
    student of a ``tools/export.py --to kdzoo`` file, given alone.

    The network carries ``_config`` (for the test pipeline and data preprocessing) and
    ``dataset_meta`` (``classes``), as mmpretrain's models do.
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
        if checkpoint is not None or cfg_options:
            raise ConfigError('an exported file holds its weights and settings; give no '
                              'checkpoint or cfg_options with it')
        meta = entry['kdzoo']
        cfg = Config(dict(model=dict(student=json.loads(meta['student'])),
                          data_preprocessor=json.loads(meta['data_preprocessor']),
                          test_pipeline=json.loads(meta['test_pipeline']),
                          classes=json.loads(meta['classes'])))
        checkpoint = model
    else:
        cfg = load_config(model if isinstance(model, Config) else find_config(model),
                          cfg_options)
    net = build_student(cfg, checkpoint, device)
    net._config = cfg
    net.dataset_meta = dict(classes=class_names_of(cfg))
    return net


class Predictor:
    """Batched image classification with a student and its config's test pipeline.

    Args:
        model: a network from :func:`get_model`, or what :func:`get_model` takes.
        checkpoint, device: passed to :func:`get_model` when ``model`` is not a network.
        batch_size: images per forward pass.
        channel_order: of numpy inputs, 'rgb' (PIL, imageio, matplotlib) or 'bgr'
            (OpenCV); image files are read by the pipeline's loader.

    Calling it with one image or a list returns one dict per image: ``pred_label``,
    ``pred_class`` (None when the config names no classes), ``pred_score`` and
    ``pred_scores`` (softmax of the joint classifier, the mean of the class and
    distillation logits for a student with a distillation token), and for such a student
    ``cls_scores`` and ``dist_scores`` (softmax of each head).
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
        self._build_data(model._config)

    def _build_data(self, cfg):
        from mmcv.transforms import Compose
        from mmengine.registry import DefaultScope

        from kdzoo.registry import MODELS, TRANSFORMS
        steps = test_pipeline_cfg(cfg)
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
        single = isinstance(inputs, (str, np.ndarray))
        items = [inputs] if single else list(inputs)
        for i, item in enumerate(items):
            if isinstance(item, str):
                if not osp.isfile(item):
                    raise FileNotFoundError(f'image {item!r} does not exist')
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
    """Classify one image (a dict) or a list of images (a list of dicts) with ``model``
    (a network from :func:`get_model`, or a config with ``checkpoint``); see
    :class:`Predictor` for the inputs and the keys."""
    return Predictor(model, checkpoint, device, batch_size, channel_order)(inputs)
