from .image_folder import ImageFolderSubset
from .replay import ReplayDataset, ReplaySampler

__all__ = ['ImageFolderSubset', 'ReplayDataset', 'ReplaySampler']
