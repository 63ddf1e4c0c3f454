"""Views: each training sample at other resolutions, or through another pipeline, for
teachers that see another view of it than the student (a student at 24 px and its teacher
at 32 px of the same crop; DeiT-Ti at 160 px from a RegNetY-16GF at 224 px; a teacher on
the image without RandAugment).

A view is asked for by a teacher (``Teacher(view=dict(size=S))``); kdzoo's Runner hands the
views of the model's teachers to the training set's :class:`~kdzoo.datasets.replay.
ReplayDataset`, which makes every view of a sample from **one** run of the pipeline:

1. the pipeline runs once, seeded by the sample's (data seed, epoch, sample id) as without
   views, with its last resizing step (:data:`SIZE_TRANSFORMS`) set to the largest size
   asked for (the student's own included);
2. the student's image and every view are that image resized to their sizes, with the
   resizing step's own method (its interpolation and backend): the student's training
   images are then made as its test pipeline makes its test images (a 24 px student of a
   32 px teacher trains on 32 px images brought to 24 px by the same ``Resize`` that
   brings its test images to 24 px).

A view with a pipeline of its own (``dict(pipeline=[...])``) is the sample through that
pipeline. With such views every transform of every pipeline draws from a generator seeded
by the sample's key and the transform (its type and its rank among the transforms of that
type, :class:`SeededTransform`), so the transforms that two pipelines share draw the same:
a teacher pipeline without RandAugment crops, flips and erases where the student's does.

So the crop, the flip and every augmentation after the resizing step (RandAugment, random
erasing) are the same in every view, pixel for pixel up to the resampling, and mixup/cutmix
mix the same pairs with the same ``lam`` and the same box, scaled to each view
(:class:`~kdzoo.models.replay_preprocessor.ReplayClsDataPreprocessor`). The student's image
is the largest image resized down: when a view is larger than the student, augmentations
act at the view's resolution (the consistency of FunMatch, Beyer et al. CVPR 2022, where
the views share everything but their size).
"""
from contextlib import contextmanager

import numpy as np
import torch

#: Transforms that set the output size of a pipeline, and the attribute that holds it.
SIZE_TRANSFORMS = {'Resize': 'scale', 'RandomResizedCrop': 'scale'}
VIEW_KEYS = ('size', 'pipeline')


def check_view(spec, owner):
    """A view ``spec`` checked: ``dict(size=S)`` or ``dict(pipeline=[...])``."""
    if (not isinstance(spec, dict) or set(spec) - set(VIEW_KEYS) or len(spec) != 1):
        raise ValueError(f'{owner}: a view is dict(size=S) (S pixels, or (height, width)) or '
                         f'dict(pipeline=[...]) (a training pipeline of its own), got {spec!r}')
    if 'pipeline' in spec:
        pipeline = spec['pipeline']
        if not isinstance(pipeline, (list, tuple)) or not pipeline or \
                str(pipeline[-1].get('type', '')).split('.')[-1] != 'PackInputs':
            raise ValueError(f'{owner}: a view pipeline is a list of transforms ending with '
                             f'PackInputs, got {pipeline!r}')
    else:
        view_size(spec, owner)
    return spec


def view_size(spec, owner):
    """The (height, width) of a size view ``spec`` (``dict(size=S)``), checked."""
    if not isinstance(spec, dict) or set(spec) != {'size'}:
        raise ValueError(f'{owner}: a view is dict(size=S) (S pixels, or (height, width)) or '
                         f'dict(pipeline=[...]), got {spec!r}')
    size = spec['size']
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in size):
        raise ValueError(f'{owner}: view size must be a positive integer or (height, width), '
                         f'got {spec["size"]!r}')
    return size


def size_step(pipeline):
    """The last transform of ``pipeline`` (a Compose) that sets the output size."""
    steps = [t for t in getattr(pipeline, 'transforms', [])
             if type(t).__name__ in SIZE_TRANSFORMS]
    if not steps:
        names = [type(t).__name__ for t in getattr(pipeline, 'transforms', [])]
        raise ValueError(
            f'views are the training images at other sizes, made by their pipeline\'s last '
            f'resizing step, and the pipeline {names} has none of {sorted(SIZE_TRANSFORMS)}: '
            'add one (for CIFAR, dict(type=\'Resize\', scale=32) after the crop and flip)')
    return steps[-1]


def step_size(step):
    """(height, width) that a size transform gives (mmcv's scale is (width, height))."""
    scale = getattr(step, SIZE_TRANSFORMS[type(step).__name__])
    w, h = (scale, scale) if isinstance(scale, int) else scale
    return int(h), int(w)


@contextmanager
def resized_to(pipeline, size):
    """Run ``pipeline`` with its last resizing step giving ``size`` (height, width)."""
    step = size_step(pipeline)
    attr = SIZE_TRANSFORMS[type(step).__name__]
    saved = getattr(step, attr)
    setattr(step, attr, (size[1], size[0]))
    try:
        yield
    finally:
        setattr(step, attr, saved)


def resize_image(img, size, interpolation='bilinear', backend='cv2'):
    """A (C, H, W) uint8 image resized to ``size`` (height, width) by ``mmcv.imresize``
    with ``interpolation`` and ``backend`` (those of the pipeline's resizing step), uint8;
    the image itself when it has that size."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    import mmcv
    hwc = img.permute(1, 2, 0).numpy()
    out = mmcv.imresize(hwc, (size[1], size[0]), interpolation=interpolation,
                        backend=backend)
    if out.ndim == 2:  # cv2 drops a single channel
        out = out[..., None]
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))


def step_resize(step):
    """``resize_image`` with the interpolation and backend of a size transform."""
    interpolation = getattr(step, 'interpolation', 'bilinear')
    backend = getattr(step, 'backend', 'cv2')
    return lambda img, size: resize_image(img, size, interpolation, backend)


def largest(sizes):
    """The size with the most pixels (its height and width the largest of all)."""
    return max(s[0] for s in sizes), max(s[1] for s in sizes)


def make_views(run, pipeline, views):
    """``(sample, {name: image})``: ``run()`` (the seeded pipeline of one sample) made once
    at the largest size of the student's and the ``views``' ({name: (h, w)}), the
    student's image and the views resized from it."""
    step = size_step(pipeline)
    own = step_size(step)
    big = largest([own, *views.values()])
    with resized_to(pipeline, big):
        sample = run()
    img = sample['inputs']
    if not isinstance(img, torch.Tensor):
        raise TypeError('views need PackInputs at the end of the pipeline (a tensor image)')
    resize = step_resize(step)
    sample['inputs'] = resize(img, own)
    return sample, {name: resize(img, size) for name, size in views.items()}


class SampleKey:
    """The key of the sample being made in this process (set by ReplayDataset)."""
    current = None


class SeededTransform:
    """A transform whose draws come from (the current sample's key, ``tag``): Python's,
    numpy's and torch's global generators are seeded before it runs (and the sample's
    generators are what they were afterwards)."""

    def __init__(self, transform, tag):
        self.transform = transform
        self.tag = tag

    def __call__(self, results):
        from .replay import seeded_global_rngs
        key = SampleKey.current
        if key is None:
            return self.transform(results)
        with seeded_global_rngs(*key, *self.tag):
            return self.transform(results)

    def __getattr__(self, name):
        if name == 'transform':
            raise AttributeError(name)
        return getattr(self.transform, name)

    def __repr__(self):
        return f'Seeded({self.transform!r})'


#: Tags of the transforms of a seeded pipeline: a stream apart from the sample's own.
TRANSFORM_TAG = 5


def seed_each_transform(pipeline):
    """Wrap each transform of ``pipeline`` (a Compose, changed in place) in a
    :class:`SeededTransform` tagged by its type and its rank among that type's transforms
    (the same tags in two pipelines mean the same draws)."""
    import zlib
    seen = {}
    for i, transform in enumerate(pipeline.transforms):
        if isinstance(transform, SeededTransform):
            continue
        name = type(transform).__name__
        rank = seen.get(name, 0)
        seen[name] = rank + 1
        pipeline.transforms[i] = SeededTransform(
            transform, (TRANSFORM_TAG, zlib.crc32(name.encode()), rank))
    return pipeline
