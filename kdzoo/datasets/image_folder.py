"""Class-folder image datasets (ImageNet layout) with class-balanced subsets."""
import os.path as osp
from collections import defaultdict

import numpy as np
from mmpretrain.datasets import CustomDataset

from kdzoo.registry import DATASETS


@DATASETS.register_module()
class ImageFolderSubset(CustomDataset):
    """``data_root/data_prefix/<class>/<image>``, optionally reduced to a class-balanced
    random subset, for data-efficiency studies.

    Args:
        subset_ratio: keep this fraction of each class's images (0 < r <= 1).
        per_class: keep at most this many images per class (instead of a ratio).
        subset_seed: seed of the random choice, so every run sees the same images.
        Other arguments are those of mmpretrain's CustomDataset.
    """

    def __init__(self, data_root='', data_prefix='', subset_ratio=1.0, per_class=None,
                 subset_seed=0, **kwargs):
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
        self.subset_ratio = subset_ratio
        self.per_class = per_class
        self.subset_seed = subset_seed
        super().__init__(data_root=data_root, data_prefix=data_prefix, **kwargs)

    def load_data_list(self):
        data_list = super().load_data_list()
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
