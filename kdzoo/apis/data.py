"""Class-folder image archives (the CIFAR-10 subset shipped with kdzoo, its unpacking) and
the check, before a run builds anything, that the folders a config reads exist."""
import os
import os.path as osp
import shutil
import tarfile
import tempfile

#: 500 training and 100 test images per class of CIFAR-10, drawn with a fixed seed.
MINI_CIFAR10 = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'assets',
                        'cifar10_mini.tar.gz')


#: Where CIFAR-10 goes: the ``data_root`` of configs/_base_/datasets/cifar10_deit.py.
CIFAR10_ROOT = osp.join('data', 'cifar10')
#: A file in an unpacked dataset naming the archive it came from.
SOURCE_FILE = 'SOURCE.txt'


def unpack_archive(archive, out):
    """Unpack ``<name>/train/<class>/*`` and ``<name>/test/<class>/*`` to ``out``.

    Unpacking goes to a temporary folder first and is renamed into place, so an
    interrupted run never leaves a half-written dataset behind. ``out/SOURCE.txt`` names
    the archive. An ``out`` that already holds train/ and test/ is kept when it came from
    the same archive; one unpacked from another archive (the shipped subset where the
    full set is asked for) is refused, naming both.
    """
    from .model import ConfigError
    if not osp.isfile(archive):
        raise ConfigError(f'archive {archive!r} does not exist')
    if osp.isdir(osp.join(out, 'train')) and osp.isdir(osp.join(out, 'test')):
        source = _read_source(out)
        if source is not None and source != osp.basename(archive):
            raise ConfigError(f'{out} holds the images of {source}, not of '
                              f'{osp.basename(archive)}; remove {out} or give --out DIR')
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
        with open(osp.join(tmp, tops[0], SOURCE_FILE), 'w', encoding='utf-8') as f:
            f.write(osp.basename(archive) + '\n')
        os.replace(osp.join(tmp, tops[0]), out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = sum(len(files) for _, _, files in os.walk(out)) - 1
    print(f'unpacked {n} images of {osp.basename(archive)} to {out}')
    return out


def _read_source(folder):
    try:
        with open(osp.join(folder, SOURCE_FILE), encoding='utf-8') as f:
            return f.read().strip() or None
    except OSError:
        return None


def _datasets(node):
    """The dataset configs inside a dataloader's ``dataset`` (wrappers included)."""
    if not isinstance(node, dict):
        return
    if 'data_root' in node or 'data_prefix' in node:
        yield node
    for key in ('dataset', 'datasets'):
        child = node.get(key)
        for item in child if isinstance(child, (list, tuple)) else [child]:
            yield from _datasets(item)


def _folder(dataset):
    prefix = dataset.get('data_prefix', '')
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', '')
    return osp.join(dataset.get('data_root', '') or '', prefix or '')


def _how_to_make(cfg, folder):
    """How a missing image folder is made, for the error message."""
    norm = osp.normpath(folder)
    synthesis = cfg.get('synthesis')
    if isinstance(synthesis, dict) and synthesis.get('out') and norm.startswith(
            osp.normpath(synthesis['out'])):
        return ('it is the synthetic set of this config: make it with '
                '`kdzoo synthesize CONFIG` (tools/synthesize.py)')
    if osp.basename(osp.dirname(norm)) == 'cifar10' or osp.basename(norm) == 'cifar10':
        root = osp.dirname(norm)
        out = '' if root == CIFAR10_ROOT else f' --out {root}'
        return (f'`kdzoo prepare-cifar10{out}` unpacks the CIFAR-10 subset shipped with '
                f'kdzoo there, `kdzoo prepare-cifar10 --archive cifar10-jpeg.tar.gz{out}` '
                'a full class-folder copy')
    return ('put the images there in the class-folder layout (<class>/<image>), or point '
            'the config at your copy with --cfg-options '
            'train_dataloader.dataset.data_root=DIR (and val_/test_dataloader)')


def missing_data(cfg, loaders=('train_dataloader', 'val_dataloader', 'test_dataloader')):
    """One line per image folder that the config's ``loaders`` read and that does not
    exist, each saying what is missing and the command that makes it; empty when all
    exist. Checked by the tools before they build anything, so a missing dataset is one
    clear line instead of a traceback from inside the runner."""
    lines, seen = [], set()
    for loader in loaders:
        node = cfg.get(loader)
        if not isinstance(node, dict):
            continue
        for dataset in _datasets(node.get('dataset')):
            folder = _folder(dataset)
            if not folder or folder in seen or osp.isdir(folder):
                continue
            seen.add(folder)
            lines.append(f'{loader}: image folder {folder!r} does not exist (relative '
                         f'paths are taken from {os.getcwd()}); {_how_to_make(cfg, folder)}')
    return lines
