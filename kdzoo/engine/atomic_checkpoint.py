"""Checkpoint files that are either complete or absent, whenever the process dies.

mmengine writes a checkpoint straight to its final name and then the ``last_checkpoint``
pointer the same way, so a process killed (``kill -9``, out of memory, a pre-empted job)
in the middle leaves a truncated ``epoch_N.pth`` or an empty or dangling pointer, and the
next ``--resume`` fails or starts over. Here every such file is written to a temporary
name in the same folder, flushed to disk and renamed over the final name
(``os.replace`` is atomic on POSIX and Windows within one file system); the folder is
synced so that the rename itself survives a crash of the machine.

Temporary files are named ``.<final name>.<random>.tmp``: hidden, never ending in
``.pth``, so no checkpoint lookup takes them for a checkpoint, and recognisable, so the
next run removes what a killed write left (:func:`remove_partial_files`).
"""
import os
import os.path as osp
import re
import uuid
import zipfile

POINTER = 'last_checkpoint'
_PARTIAL = re.compile(r'^\.(?P<final>.+)\.[0-9a-f]{8}\.tmp$')
# mmengine's CheckpointHook names: filename_tmpl 'epoch_{}.pth' or 'iter_{}.pth'.
_STEP_NAME = re.compile(r'^(?P<kind>epoch|iter)_(?P<step>\d+)\.pth$')


def partial_path(path):
    """A fresh temporary name beside ``path`` for writing it."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.{uuid.uuid4().hex[:8]}.tmp')


def is_partial(name):
    """Whether ``name`` (a file name) is a temporary file of an unfinished write."""
    return _PARTIAL.match(osp.basename(name)) is not None


def _fsync_dir(folder):
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:  # some systems cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit(tmp, path):
    """Flush ``tmp`` to disk and rename it to ``path`` in one step."""
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(osp.dirname(path))


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` so that a reader sees the old or the new text, whole."""
    tmp = partial_path(path)
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
        commit(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def save_atomic(write, path):
    """Call ``write(tmp)`` to write the file and then put it at ``path``; if ``write``
    fails (or the process is stopped by an exception), ``path`` is left as it was."""
    tmp = partial_path(path)
    try:
        write(tmp)
        commit(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def remove_partial_files(folder):
    """Delete the temporary files that interrupted writes left in ``folder``; returns
    their names. Run before a run writes there, never while another process does."""
    removed = []
    if not osp.isdir(folder):
        return removed
    for entry in os.scandir(folder):
        if entry.is_file() and is_partial(entry.name):
            _remove_quietly(entry.path)
            removed.append(entry.name)
    return sorted(removed)


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def checkpoint_step(name):
    """``('epoch', 12)`` for ``epoch_12.pth``, ``('iter', 500)`` for ``iter_500.pth``,
    None for other names."""
    m = _STEP_NAME.match(osp.basename(name))
    return (m['kind'], int(m['step'])) if m else None


def is_complete(path):
    """Whether ``path`` is a whole torch checkpoint: torch's zip format ends with the
    archive's central directory, which a write cut short does not reach."""
    return osp.isfile(path) and zipfile.is_zipfile(path)


def read_pointer(work_dir):
    """The checkpoint that ``work_dir/last_checkpoint`` names (resolved in the folder it
    names, or in ``work_dir`` for a relative or moved path), or None."""
    pointer = osp.join(work_dir, POINTER)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        target = f.read().strip()
    if not target:
        return None
    # mmengine writes join(out_dir, name), relative to where the run started; a work dir
    # that was moved keeps its checkpoints beside the pointer.
    return target if osp.exists(target) else osp.join(work_dir, osp.basename(target))


def latest_checkpoint(work_dir):
    """The checkpoint that an automatic resume in ``work_dir`` should take, or None.

    That is the pointer's checkpoint, unless a complete checkpoint of the same kind with a
    later step is there too (the process stopped after writing it, before updating the
    pointer) or the pointer's file is missing or cut short (a run killed in the middle of
    a write by a version that did not write atomically); then the latest complete one.
    """
    pointed = read_pointer(work_dir)
    folder = osp.dirname(pointed) if pointed else work_dir
    kind = checkpoint_step(pointed)[0] if pointed and checkpoint_step(pointed) else None
    if pointed and kind is None:
        # A custom filename_tmpl: its names cannot be ordered, the pointer decides.
        return pointed if osp.isfile(pointed) else None
    best, best_step = None, -1
    if pointed and is_complete(pointed):
        best, best_step = pointed, checkpoint_step(pointed)[1]
    if not osp.isdir(folder):
        return best
    for entry in os.scandir(folder):
        parsed = checkpoint_step(entry.name)
        if parsed is None or (kind is not None and parsed[0] != kind):
            continue
        if parsed[1] > best_step and is_complete(entry.path):
            best, best_step = entry.path, parsed[1]
    return best
