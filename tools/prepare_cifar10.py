"""Unpack CIFAR-10 (class-folder JPEG layout) where the configs expect it.

    python tools/prepare_cifar10.py                 # the subset shipped with kdzoo -> data/cifar10_mini
    python tools/prepare_cifar10.py --archive ../shared/data/cifar10-jpeg.tar.gz   # -> data/cifar10

The archive must hold ``<name>/train/<class>/*.jpg`` and ``<name>/test/<class>/*.jpg``.
The shipped subset is 500 training and 100 test images per class, drawn with a fixed seed
from the full set. Unpacking goes to a temporary folder first and is renamed into place,
so an interrupted run never leaves a half-written dataset behind.
"""
import argparse
import os
import os.path as osp
import shutil
import tarfile
import tempfile

MINI = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'kdzoo', 'assets',
                'cifar10_mini.tar.gz')


def unpack(archive, out):
    if not osp.isfile(archive):
        raise SystemExit(f'archive {archive!r} does not exist')
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
            raise SystemExit(f'{archive!r} does not hold one folder with train/ and test/')
        os.replace(osp.join(tmp, tops[0]), out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = sum(len(files) for _, _, files in os.walk(out))
    print(f'unpacked {n} images to {out}')
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archive', help='a CIFAR-10 class-folder tar.gz (default: the '
                        'subset shipped with kdzoo)')
    parser.add_argument('--out', help='destination (default data/cifar10, or data/cifar10_mini '
                        'for the shipped subset)')
    args = parser.parse_args(argv)
    archive = args.archive or MINI
    out = args.out or ('data/cifar10' if args.archive else 'data/cifar10_mini')
    return unpack(archive, out)


if __name__ == '__main__':
    main()
