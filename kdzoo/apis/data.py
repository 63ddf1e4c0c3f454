"""Class-folder image archives: the CIFAR-10 subset shipped with kdzoo and its unpacking."""
import os
import os.path as osp
import shutil
import tarfile
import tempfile

#: 500 training and 100 test images per class of CIFAR-10, drawn with a fixed seed.
MINI_CIFAR10 = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'assets',
                        'cifar10_mini.tar.gz')


def unpack_archive(archive, out):
    """Unpack ``<name>/train/<class>/*`` and ``<name>/test/<class>/*`` to ``out``.

    Unpacking goes to a temporary folder first and is renamed into place, so an
    interrupted run never leaves a half-written dataset behind; an ``out`` that already
    holds train/ and test/ is kept.
    """
    from .model import ConfigError
    if not osp.isfile(archive):
        raise ConfigError(f'archive {archive!r} does not exist')
    if osp.isdir(osp.join(out, 'train')) and osp.isdir(osp.join(out, 'test')):
        print(f'{out} already holds train/ and test/; nothing to do')
        return out
    parent = osp.dirname(osp.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix='.unpack-')
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter='data')
        tops = [d for d in os.listdir(tmp) if osp.isdir(osp.join(tmp, d))]
        if len(tops) != 1 or not osp.isdir(osp.join(tmp, tops[0], 'train')):
            raise ConfigError(f'{archive!r} does not hold one folder with train/ and test/')
        os.replace(osp.join(tmp, tops[0]), out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = sum(len(files) for _, _, files in os.walk(out))
    print(f'unpacked {n} images to {out}')
    return out
