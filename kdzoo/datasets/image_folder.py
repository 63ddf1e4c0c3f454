"""Class-folder image datasets (ImageNet layout) with class-balanced subsets."""
import logging
import os.path as osp
from collections import defaultdict

import numpy as np
from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset

from kdzoo.registry import DATASETS

from .check import image_error

BAD_IMAGE_POLICIES = ('error', 'skip')
EMPTY_CLASS_POLICIES = ('error', 'warn')


@DATASETS.register_module()
class ImageFolderSubset(CustomDataset):
    """``data_root/data_prefix/<class>/<image>``, optionally reduced to a class-balanced
    random subset, for data-efficiency studies.

    Args:
        subset_ratio: keep this fraction of each class's images (0 < r <= 1).
        per_class: keep at most this many images per class (instead of a ratio).
        subset_seed: seed of the random choice, so every run sees the same images.
        bad_image: what an image that cannot be decoded does when it is loaded: 'error'
            (default) stops with an error that names the file; 'skip' logs the file once
            and takes the next image of the dataset instead (the next index, so a run is
            still reproducible), so a long run does not die over one file.
            ``tools/check_data.py`` finds every such file before a run.
        empty_class: a class folder without any image: 'error' (default; the model
            would have an output that no image trains or tests) or 'warn' (a warning
            that names the folder).
        cache_decoded: decode every image once, when the dataset is built, and keep
            the decoded arrays in memory (one block when the images share a shape,
            e.g. CIFAR-10's 50,000 images are 150 MB), instead of reading and decoding
            the file at each access. Forked data-loader workers share the block
            copy-on-write. The pipeline's first transform must be the loader
            (``LoadImageFromFile``); it is run once per image and its output is replayed,
            so samples, and the augmentation randomness, are exactly those without the
            cache. For small images that fit in memory; default False.
        Other arguments are those of mmpretrain's CustomDataset.
    """

    def __init__(self, data_root='', data_prefix='', subset_ratio=1.0, per_class=None,
                 subset_seed=0, bad_image='error', empty_class='error', cache_decoded=False,
                 **kwargs):
        folder = osp.join(data_root, data_prefix if isinstance(data_prefix, str)
                          else data_prefix.get('img_path', ''))
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'image folder {folder!r} does not exist; expected <class>/<image> '
                'sub-folders there (see tools/prepare_cifar10.py for CIFAR-10)')
        if not 0.0 < subset_ratio <= 1.0:
            raise ValueError(f'subset_ratio must be in (0, 1], got {subset_ratio}')
        if per_class is not None and per_class < 1:
            raise ValueError(f'per_class must be a positive integer, got {per_class}')
        for name, value, allowed in (('bad_image', bad_image, BAD_IMAGE_POLICIES),
                                     ('empty_class', empty_class, EMPTY_CLASS_POLICIES)):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {allowed}, got {value!r}')
        self.bad_image = bad_image
        self.empty_class = empty_class
        self._skipped = set()
        self.subset_ratio = subset_ratio
        self.per_class = per_class
        self.subset_seed = subset_seed
        self.cache_decoded = bool(cache_decoded)
        self._cache = None
        super().__init__(data_root=data_root, data_prefix=data_prefix, **kwargs)

    def full_init(self):
        super().full_init()
        if self.cache_decoded and self._cache is None:
            self._build_cache()

    def _build_cache(self):
        """Run the pipeline's loader on every image once and keep what it adds. An
        image that cannot be decoded is left out (None): accessing it goes through
        the loader again, so ``bad_image`` handles it as without the cache."""
        loader = self.pipeline.transforms[0] if self.pipeline.transforms else None
        if type(loader).__name__ != 'LoadImageFromFile':
            raise ValueError(
                'cache_decoded=True needs LoadImageFromFile as the first transform of the '
                f'pipeline, got {type(loader).__name__ if loader else "an empty pipeline"}; '
                'put it first or set cache_decoded=False')
        images, extras = [], []
        for idx in range(len(self)):
            info = self.get_data_info(idx)
            try:
                out = loader(dict(info))
            except Exception:
                out = None
            if out is None:
                images.append(None)
                extras.append(None)
                continue
            images.append(out.pop('img'))
            extras.append({k: v for k, v in out.items()
                           if k not in info or info[k] is not v})
        shapes = {(a.shape, a.dtype) for a in images if a is not None}
        if len(shapes) == 1 and all(a is not None for a in images):
            block = np.stack(images)  # one buffer: workers share its pages
            images = list(block)
        self._cache = (images, extras)
        size = sum(a.nbytes for a in images if a is not None)
        print_log(f'{type(self).__name__}: {len(images)} decoded images cached in memory '
                  f'({size / 2**20:.1f} MB) from {self.img_prefix}', logger='current')

    def _prepare(self, idx):
        if self._cache is None or self._cache[0][idx] is None:
            return super().prepare_data(idx)
        images, extras = self._cache
        results = self.get_data_info(idx)
        results.update(extras[idx])
        results['img'] = images[idx].copy()  # transforms may write into it
        for transform in self.pipeline.transforms[1:]:
            results = transform(results)
            if results is None:
                return None
        return results

    def load_data_list(self):
        data_list = super().load_data_list()
        self._check_empty_classes(data_list)
        if self.subset_ratio == 1.0 and self.per_class is None:
            return data_list
        by_class = defaultdict(list)
        for i, info in enumerate(data_list):
            by_class[int(info['gt_label'])].append(i)
        rng = np.random.default_rng(self.subset_seed)
        keep = []
        for label in sorted(by_class):
            idx = by_class[label]
            n = self.per_class or max(1, int(round(len(idx) * self.subset_ratio)))
            keep.extend(rng.permutation(idx)[:min(n, len(idx))].tolist())
        return [data_list[i] for i in sorted(keep)]

    def _check_empty_classes(self, data_list):
        folder_to_idx = getattr(self, 'folder_to_idx', None)
        if not folder_to_idx:  # an annotation file, not class folders
            return
        found = {int(info['gt_label']) for info in data_list}
        empty = [osp.join(self.img_prefix, name) for name, i in sorted(folder_to_idx.items())
                 if i not in found]
        if not empty:
            return
        kinds = ', '.join(sorted(self.extensions))
        message = (f'class folders without an image (of {kinds}): {", ".join(empty)}; every '
                   'class folder is a class of the model')
        if self.empty_class == 'error':
            raise ValueError(f'{message}. Put images in them or remove them, or set '
                             "empty_class='warn' in the dataset to train with them")
        print_log(message, logger='current', level=logging.WARNING)

    def prepare_data(self, idx):
        """The pipeline's output for image ``idx``; an image that cannot be decoded is
        handled as ``bad_image`` says. A pipeline error on an image that decodes is
        raised as it is: it is not about the file."""
        for _ in range(len(self)):
            try:
                return self._prepare(idx)
            except Exception as error:
                path = self.get_data_info(idx).get('img_path')
                reason = image_error(path) if path else None
                if reason is None:
                    raise
                if self.bad_image == 'error':
                    raise ValueError(
                        f'image {path} cannot be decoded ({reason}); remove or replace it, '
                        "or set bad_image='skip' in the dataset to train without it "
                        '(tools/check_data.py lists every such file)') from error
                if path not in self._skipped:
                    self._skipped.add(path)
                    print_log(f'image {path} cannot be decoded ({reason}); skipped, the '
                              'next image is used instead', logger='current',
                              level=logging.WARNING)
                idx = (idx + 1) % len(self)
        raise ValueError(f'no image of the dataset at {self.img_prefix} can be decoded')
