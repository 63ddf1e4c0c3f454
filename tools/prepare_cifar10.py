"""Unpack CIFAR-10 (class-folder JPEG layout) where the configs expect it.

    python tools/prepare_cifar10.py                 # the subset shipped with kdzoo -> data/cifar10_mini
    python tools/prepare_cifar10.py --archive ../shared/data/cifar10-jpeg.tar.gz   # -> data/cifar10

The archive must hold ``<name>/train/<class>/*.jpg`` and ``<name>/test/<class>/*.jpg``.
The shipped subset is 500 training and 100 test images per class, drawn with a fixed seed
from the full set. Unpacking goes to a temporary folder first and is renamed into place,
so an interrupted run never leaves a half-written dataset behind.
"""
import argparse

from kdzoo.apis import MINI_CIFAR10, ConfigError, unpack_archive


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archive', help='a CIFAR-10 class-folder tar.gz (default: the '
                        'subset shipped with kdzoo)')
    parser.add_argument('--out', help='destination (default data/cifar10, or data/cifar10_mini '
                        'for the shipped subset)')
    args = parser.parse_args(argv)
    archive = args.archive or MINI_CIFAR10
    out = args.out or ('data/cifar10' if args.archive else 'data/cifar10_mini')
    try:
        return unpack_archive(archive, out)
    except ConfigError as e:
        raise SystemExit(str(e)) from None


if __name__ == '__main__':
    main()
