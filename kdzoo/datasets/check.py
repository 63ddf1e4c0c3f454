"""Decoding every image of a class-folder dataset, to find bad files before a run does.

A truncated JPEG or a file of another kind named ``.jpg`` stops a training run at the
iteration that reaches it, which on ImageNet can be hours in. :func:`check_image_folder`
decodes every image in a process pool (``tools/check_data.py`` is its command line) and
reports the files that do not decode and the class folders without an image.
"""
import os
import os.path as osp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

#: The file endings mmpretrain's CustomDataset takes as images (its default).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')
SPLITS = ('train', 'val', 'test')


def image_error(path):
    """Why the image at ``path`` cannot be decoded (``'ExceptionType: message'``), or None
    when it decodes completely.

    Pillow decodes the whole image (``load``), so a file cut short fails here even where
    a more lenient decoder would return a partly grey image.
    """
    from PIL import Image
    try:
        with Image.open(path) as img:
            img.load()
    except Exception as e:  # every way a file can fail to decode is a finding here
        return f'{type(e).__name__}: {e}'
    return None


def is_image_file(name, extensions=IMAGE_EXTENSIONS):
    return name.lower().endswith(tuple(extensions))


def class_folder_roots(root):
    """The class-folder roots under ``root``: ``root/{train,val,test}`` where they exist
    (a dataset root), else ``root`` itself (``root/<class>/<image>``)."""
    if not osp.isdir(root):
        raise FileNotFoundError(f'{root!r} is not a folder; give a class-folder dataset '
                                '(ROOT/<class>/<image>) or a dataset root with '
                                f'{"/, ".join(SPLITS)}/ in it')
    splits = [osp.join(root, s) for s in SPLITS if osp.isdir(osp.join(root, s))]
    return splits or [root]


def list_class_folders(root, extensions=IMAGE_EXTENSIONS):
    """``{class folder: [image paths]}`` of one class-folder root; images are found
    recursively inside each class folder, as mmpretrain's CustomDataset does."""
    folders = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir():
            images = []
            for parent, _, files in sorted(os.walk(entry.path)):
                images += [osp.join(parent, f) for f in sorted(files)
                           if is_image_file(f, extensions)]
            folders[entry.path] = images
    if not folders:
        raise ValueError(f'{root!r} has no class folders; expected <class>/<image> in it')
    return folders


@dataclass
class DataReport:
    """What :func:`check_image_folder` found."""
    num_images: int = 0
    bad: list = field(default_factory=list)  # (path, reason)
    empty: list = field(default_factory=list)  # class folders without an image

    @property
    def ok(self):
        return not self.bad and not self.empty

    def format(self):
        lines = [f'{self.num_images} images checked: {len(self.bad)} cannot be decoded, '
                 f'{len(self.empty)} class folders without an image']
        lines += [f'unreadable: {path} ({reason})' for path, reason in self.bad]
        lines += [f'empty class folder: {folder}' for folder in self.empty]
        return '\n'.join(lines)


def check_image_folder(root, workers=None, progress=True, extensions=IMAGE_EXTENSIONS):
    """Decode every image of the class-folder dataset at ``root`` (or of its train/, val/
    and test/ folders) with ``workers`` processes (default: every CPU; 0 decodes in this
    process) and return a :class:`DataReport`."""
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise ValueError(f'workers must be an integer >= 0 (0: no worker processes), got '
                         f'{workers!r}')
    report = DataReport()
    paths = []
    for split_root in class_folder_roots(root):
        folders = list_class_folders(split_root, extensions)
        report.empty += [folder for folder, images in folders.items() if not images]
        for images in folders.values():
            paths += images
    report.num_images = len(paths)
    if workers == 0:
        errors = map(image_error, paths)
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=workers or os.cpu_count())
        errors = pool.map(image_error, paths, chunksize=max(1, min(256, len(paths) // 64)))
    try:
        if progress:
            from tqdm import tqdm
            errors = tqdm(errors, total=len(paths), desc='decoding', unit='img')
        errors = list(errors)  # to the end, so the progress bar closes
        report.bad = [(path, error) for path, error in zip(paths, errors) if error]
    finally:
        if pool is not None:
            pool.shutdown()
    return report
