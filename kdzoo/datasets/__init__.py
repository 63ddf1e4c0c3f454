from .image_folder import ImageFolderSubset

__all__ = ['ImageFolderSubset']
