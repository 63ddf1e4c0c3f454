"""A teacher record: what a teacher says about every replayed view of a run's schedule,
stored once and read by any number of runs (:mod:`kdzoo.datasets.replay`).

On disk, a folder::

    header.json                  format, fingerprint, epochs, positions, kind, k, dtype, chunk
    epoch_0000.<array>.npy ...   one memory-mapped array per epoch and output array
    done/e0000_c00012            one empty marker per chunk written (atomic rename)
    val.json                     the teacher's rank of the true class of each validation
                                 image (optional; teacher accuracy without the teacher)

Output kinds (``kind``), per view (epoch, position):

* ``'class'``: the teacher's class, int16 (2 bytes): what hard distillation reads.
* ``'topk'``: the k largest logits (``values``, ``dtype``) with their classes
  (``index``, int16) and the log-sum-exp of the other classes (``rest``, float32).
  :meth:`TeacherRecord.logits` rebuilds full logits with the rest's probability mass
  spread evenly over the other classes: the top-k probabilities and the mass of the
  rest are the teacher's (up to ``dtype``), as in TinyViT's sparse logits (Wu et al.,
  ECCV 2022), which keep no rest term.
* ``'logits'``: all logits in ``dtype`` (for small class counts, e.g. CIFAR-10).

A chunk (``chunk`` positions of one epoch) is written into the arrays, flushed, then
marked done by renaming a marker into ``done/``: a killed writer leaves no marker for a
half-written chunk, which the next run writes again; a chunk is never marked twice.
"""
import json
import os
import os.path as osp

import numpy as np
import torch

from .fingerprint import fingerprint_differences

FORMAT = 'kdzoo-teacher-record'
VERSION = 1
OUTPUT_KINDS = ('class', 'topk', 'logits')
DTYPES = ('float16', 'bfloat16', 'float32')
HEADER = 'header.json'
VAL = 'val.json'
DONE = 'done'
MAPPED_ARRAYS = 12


def check_output(kind, k, dtype, num_classes):
    """Clear errors for a record's output settings."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f'record kind must be one of {OUTPUT_KINDS}, got {kind!r}')
    if dtype not in DTYPES:
        raise ValueError(f'record dtype must be one of {DTYPES}, got {dtype!r}')
    if kind == 'topk' and not (isinstance(k, int) and 1 <= k < num_classes):
        raise ValueError(f'top-k records need 1 <= k < {num_classes} (the class count), '
                         f'got k={k!r}; use kind="logits" to keep every class')
    if num_classes > np.iinfo(np.int16).max:
        raise ValueError(f'{num_classes} classes do not fit the int16 class index')


def arrays(kind, k, dtype, num_classes):
    """{array name: (numpy dtype, per-view shape)} of one output kind."""
    store = np.float32 if dtype == 'float32' else np.uint16  # fp16/bf16 kept as bits
    if kind == 'class':
        return {'class': (np.int16, ())}
    if kind == 'topk':
        return {'values': (store, (k,)), 'index': (np.int16, (k,)),
                'rest': (np.float32, ())}
    return {'logits': (store, (num_classes,))}


def view_bytes(kind, k, dtype, num_classes):
    return sum(np.dtype(t).itemsize * int(np.prod(s, dtype=np.int64))
               for t, s in arrays(kind, k, dtype, num_classes).values())


def record_bytes(kind, k, dtype, num_classes, positions, epochs):
    """Bytes on disk of a record (the arrays; headers and markers are negligible)."""
    return view_bytes(kind, k, dtype, num_classes) * int(positions) * int(epochs)


def human_bytes(n):
    for unit in ('B', 'KB', 'MB', 'GB', 'TB'):
        if n < 1024 or unit == 'TB':
            return f'{n:.1f} {unit}' if unit != 'B' else f'{n} B'
        n /= 1024


def _to_bits(x, dtype):
    if dtype == 'float32':
        return x.float().cpu().numpy()
    torch_dtype = torch.float16 if dtype == 'float16' else torch.bfloat16
    return x.to(torch_dtype).cpu().view(torch.int16).numpy().view(np.uint16)


def _from_bits(a, dtype):
    if dtype == 'float32':
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    torch_dtype = torch.float16 if dtype == 'float16' else torch.bfloat16
    bits = torch.from_numpy(np.ascontiguousarray(a).view(np.int16))
    return bits.view(torch_dtype).float()


def encode(logits, kind, k, dtype):
    """{array name: numpy array} for float logits (N, K)."""
    logits = logits.detach().float()
    if kind == 'class':
        return {'class': logits.argmax(1).to(torch.int16).cpu().numpy()}
    if kind == 'logits':
        return {'logits': _to_bits(logits, dtype)}
    top, index = logits.topk(k, dim=1)
    rest = logits.scatter(1, index, float('-inf')).logsumexp(1)
    return {'values': _to_bits(top, dtype), 'index': index.to(torch.int16).cpu().numpy(),
            'rest': rest.cpu().numpy().astype(np.float32)}


def decode(parts, kind, k, dtype, num_classes):
    """Float32 logits (N, K) from stored arrays (``'class'``: None)."""
    if kind == 'class':
        return None
    if kind == 'logits':
        return _from_bits(parts['logits'], dtype)
    values = _from_bits(parts['values'], dtype)
    index = torch.from_numpy(np.ascontiguousarray(parts['index']).astype(np.int64))
    rest = torch.from_numpy(np.ascontiguousarray(parts['rest']))
    others = num_classes - k
    fill = rest - float(np.log(others))  # each other class: an equal share of the rest
    out = fill[:, None].expand(len(values), num_classes).clone()
    return out.scatter(1, index, values)


def _write_text(path, text):
    """The project's atomic text write (a temporary ``.<name>.<hex>.tmp`` beside ``path``,
    fsynced and renamed); imported here because kdzoo.engine imports this module."""
    from kdzoo.engine.atomic_checkpoint import write_text_atomic
    write_text_atomic(path, text)


def is_partial_write(name):
    """Whether ``name`` is the temporary file of an unfinished write into a record (a
    marker, the header, val.json, or an array being created)."""
    from kdzoo.engine.atomic_checkpoint import is_partial
    return is_partial(name) or name.endswith('.npy.tmp')


class RecordError(ValueError):
    """A record that cannot serve a run: the message names the file and the difference."""


class TeacherRecord:
    """A record on disk, for reading (``mode='r'``) or writing (``'r+'``).

    Use :meth:`create` to start one (or resume it: an existing record with the same
    header is opened, any other refused) and :meth:`open` to read a complete one.
    """

    def __init__(self, path, header, mode='r'):
        self.path = path
        self.header = header
        self.mode = mode
        self._maps = {}

    # ----- header -------------------------------------------------------------------
    @property
    def fingerprint(self):
        return self.header['fingerprint']

    @property
    def epochs(self):
        return self.header['epochs']

    @property
    def positions(self):
        return self.header['positions']

    @property
    def kind(self):
        return self.header['kind']

    @property
    def num_classes(self):
        return self.header['num_classes']

    @property
    def chunk(self):
        return self.header['chunk']

    @property
    def num_chunks(self):
        return -(-self.positions // self.chunk)

    def array_file(self, epoch, name):
        return osp.join(self.path, f'epoch_{epoch:04d}.{name}.npy')

    def marker(self, epoch, chunk):
        return osp.join(self.path, DONE, f'e{epoch:04d}_c{chunk:06d}')

    # ----- creating and resuming ----------------------------------------------------
    @classmethod
    def create(cls, path, fingerprint, epochs, positions, num_classes, kind='logits', k=None,
               dtype='float16', chunk=1024, rank=0):
        """A record to write at ``path``: made by rank 0 (call :meth:`make_files` there,
        then let the other ranks open it), or resumed when ``path`` holds one with the
        same header. A record of other settings is refused, naming the difference."""
        check_output(kind, k, dtype, num_classes)
        if chunk < 2 or chunk % 2:
            raise ValueError(f'chunk must be an even number >= 2 (whole pairs), got {chunk}')
        header = dict(format=FORMAT, version=VERSION, fingerprint=fingerprint,
                      epochs=int(epochs), positions=int(positions),
                      num_classes=int(num_classes), kind=kind,
                      k=int(k) if kind == 'topk' else None, dtype=dtype, chunk=int(chunk))
        existing = osp.join(path, HEADER)
        if osp.isfile(existing):
            old = read_header(path)
            old_cmp = {key: v for key, v in old.items() if key != 'complete'}
            if old_cmp != header:
                diff = fingerprint_differences(old_cmp, header)
                raise RecordError(f'{path} holds a record of other settings; remove it or '
                                  'record elsewhere (--out). Differences: '
                                  + '; '.join(diff))
            return cls(path, old, mode='r+')
        return cls(path, header, mode='r+')

    def make_files(self):
        """Rank 0: the folder, the arrays (each created under a temporary name and
        renamed, so an existing one is never truncated) and the header."""
        os.makedirs(osp.join(self.path, DONE), exist_ok=True)
        h = self.header
        for epoch in range(self.epochs):
            for name, (dtype, shape) in arrays(h['kind'], h['k'], h['dtype'],
                                               h['num_classes']).items():
                target = self.array_file(epoch, name)
                if osp.isfile(target):
                    try:  # kept unless a creation killed before its header left another
                        check_array_file(target, (self.positions, *shape), np.dtype(dtype))
                        continue
                    except RecordError:
                        if osp.isfile(osp.join(self.path, HEADER)):
                            raise
                tmp = target + '.tmp'
                np.lib.format.open_memmap(tmp, mode='w+', dtype=dtype,
                                          shape=(self.positions, *shape)).flush()
                os.replace(tmp, target)
        if not osp.isfile(osp.join(self.path, HEADER)):
            _write_text(osp.join(self.path, HEADER), json.dumps(self.header, indent=1))

    def done(self, epoch, chunk):
        return osp.isfile(self.marker(epoch, chunk))

    def todo(self, epochs=None, rank=0, world_size=1):
        """(epoch, chunk) pairs not marked done, dealt to ``rank`` of ``world_size``."""
        work = [(e, c) for e in (range(self.epochs) if epochs is None else epochs)
                for c in range(self.num_chunks)]
        return [w for i, w in enumerate(work) if i % world_size == rank
                and not self.done(*w)]

    def chunk_positions(self, chunk):
        return np.arange(chunk * self.chunk, min((chunk + 1) * self.chunk, self.positions))

    def write_chunk(self, epoch, chunk, logits):
        """Store the teacher's logits (N, K) for every position of ``chunk`` of
        ``epoch``, flush, and mark the chunk done."""
        pos = self.chunk_positions(chunk)
        if len(logits) != len(pos):
            raise ValueError(f'chunk {chunk} has {len(pos)} positions, got {len(logits)} '
                             'outputs')
        h = self.header
        for name, values in encode(logits, h['kind'], h['k'], h['dtype']).items():
            array = self._map(epoch, name, 'r+')
            array[pos[0]:pos[-1] + 1] = values
            array.flush()
        marker = self.marker(epoch, chunk)
        if osp.isfile(marker):
            raise RuntimeError(f'{marker}: chunk written twice')
        _write_text(marker, '')

    def missing(self):
        return [(e, c) for e in range(self.epochs) for c in range(self.num_chunks)
                if not self.done(e, c)]

    def finish(self):
        """Rank 0, once every chunk is done: the header says complete."""
        missing = self.missing()
        if missing:
            raise RecordError(f'{self.path}: {len(missing)} chunks not written yet, e.g. '
                              f'(epoch, chunk) {missing[:3]}')
        self.header['complete'] = True
        _write_text(osp.join(self.path, HEADER), json.dumps(self.header, indent=1))

    def write_val(self, paths, ranks):
        """The teacher's rank of the true class (0 = correct) for each validation image."""
        _write_text(osp.join(self.path, VAL),
                      json.dumps(dict(paths=list(paths), ranks=[int(r) for r in ranks])))

    # ----- reading ------------------------------------------------------------------
    @classmethod
    def open(cls, path):
        """A complete record, its arrays checked against the header (a truncated or
        missing file, or a chunk not written, is a :class:`RecordError` naming it)."""
        header = read_header(path)
        record = cls(path, header)
        if not header.get('complete'):
            missing = record.missing()
            raise RecordError(f'{path} is not complete: {len(missing)} of '
                              f'{record.epochs * record.num_chunks} chunks missing (e.g. '
                              f'(epoch, chunk) {missing[:3]}); run the recording again to '
                              'finish it')
        h = header
        for epoch in range(record.epochs):
            for name, (dtype, shape) in arrays(h['kind'], h['k'], h['dtype'],
                                               h['num_classes']).items():
                check_array_file(record.array_file(epoch, name),
                                 (record.positions, *shape), np.dtype(dtype))
        return record

    def _map(self, epoch, name, mode='r'):
        # A few epochs mapped at a time: each mapping holds a file descriptor, and a
        # 300-epoch top-k record has 900 arrays.
        key = (epoch, name)
        if key not in self._maps:
            if len(self._maps) >= MAPPED_ARRAYS:
                self._maps.pop(next(iter(self._maps)))
            self._maps[key] = np.load(self.array_file(epoch, name), mmap_mode=mode)
        return self._maps[key]

    def check_epoch(self, epoch):
        if not 0 <= epoch < self.epochs:
            raise RecordError(f'{self.path} holds epochs 0..{self.epochs - 1}, the run '
                              f'reads epoch {epoch}; record at least {epoch + 1} epochs')

    def read(self, epoch, positions):
        """{array name: numpy array} of the views at ``positions`` of ``epoch``."""
        self.check_epoch(epoch)
        pos = np.asarray(positions, dtype=np.int64)
        if len(pos) and (pos.min() < 0 or pos.max() >= self.positions):
            raise RecordError(f'{self.path} holds positions 0..{self.positions - 1}, got '
                              f'{int(pos.min())}..{int(pos.max())}')
        h = self.header
        return {name: np.asarray(self._map(epoch, name)[pos])
                for name in arrays(h['kind'], h['k'], h['dtype'], h['num_classes'])}

    def logits(self, epoch, positions):
        """Float32 logits (N, K) of the views (``kind='class'``: None)."""
        h = self.header
        return decode(self.read(epoch, positions), h['kind'], h['k'], h['dtype'],
                      h['num_classes'])

    def classes(self, epoch, positions):
        """The teacher's class of each view, int64 (N,)."""
        if self.kind == 'class':
            return torch.from_numpy(self.read(epoch, positions)['class'].astype(np.int64))
        return self.logits(epoch, positions).argmax(1)

    def val_ranks(self):
        """{image path: rank of the true class} recorded for the validation set, or None."""
        file = osp.join(self.path, VAL)
        if not osp.isfile(file):
            return None
        with open(file) as f:
            val = json.load(f)
        return dict(zip(val['paths'], val['ranks']))

    def tolerance(self, logits):
        """Largest difference between ``logits`` and their stored-and-read value that the
        dtype explains (a relative half-ulp of the stored dtype, plus an absolute floor)."""
        eps = {'float16': 2.0 ** -11, 'bfloat16': 2.0 ** -8, 'float32': 2.0 ** -24}
        return eps[self.header['dtype']] * logits.abs() + 1e-3


def check_array_file(file, shape, dtype):
    """A RecordError naming ``file`` unless it is a complete .npy array of ``shape`` and
    ``dtype`` (only its header is read, and its size checked)."""
    try:
        with open(file, 'rb') as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                raise ValueError(f'.npy format version {version}')
            got_shape, _, got_dtype = read(f)
            offset = f.tell()
    except (OSError, ValueError) as error:
        raise RecordError(f'{file}: cannot be read ({error}); the record is damaged, '
                          'record it again') from error
    if tuple(got_shape) != tuple(shape) or got_dtype != dtype:
        raise RecordError(f'{file}: shape {tuple(got_shape)} {got_dtype}, the header says '
                          f'{tuple(shape)} {dtype}')
    want = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = osp.getsize(file)
    if size < want:
        raise RecordError(f'{file}: {size} bytes, {want} expected: the file is cut short; '
                          'record it again')


def read_header(path):
    file = osp.join(path, HEADER)
    if not osp.isfile(file):
        raise RecordError(f'{path}: no teacher record there ({HEADER} missing); make one with '
                          'tools/record_teacher.py CONFIG --out PATH')
    try:
        with open(file) as f:
            header = json.load(f)
    except (OSError, ValueError) as error:
        raise RecordError(f'{file}: cannot be read ({error})') from error
    if header.get('format') != FORMAT or header.get('version') != VERSION:
        raise RecordError(f'{file}: not a kdzoo teacher record of version {VERSION} (format '
                          f'{header.get("format")!r}, version {header.get("version")!r})')
    return header
