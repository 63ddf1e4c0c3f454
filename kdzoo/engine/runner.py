"""mmengine's Runner, with a log folder of its own for every run and checkpoints that
load strictly, with errors that name the file."""
import os
import os.path as osp
import re
from collections import OrderedDict
from functools import partial

import torch
from mmengine.dist import broadcast, master_only
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner as MMRunner
from mmengine.runner.checkpoint import _load_checkpoint

from kdzoo.compat import quiet_mmengine_notices
from kdzoo.models.checkpoint import (EXPORT_LAYOUTS, exported_layout, fit_state_dict,
                                     is_url, read_checkpoint, resolve_checkpoint)
from kdzoo.numerics import flush_denormals
from .atomic_checkpoint import latest_checkpoint, read_pointer, save_atomic
from .config_check import prepare_config
from .data_check_hook import check_schedule


#: How much lower the data-loader workers' CPU priority is than the training process's
#: (``os.nice`` increment; a loader config's ``worker_nice`` overrides it, 0 keeps them
#: equal). On a CPU the workers' augmentation and the training step share the cores; at
#: equal priority every worker time slice preempts an intra-op thread of the step, which
#: then holds up the others at its next barrier. Measured on 2 cores of an AMD EPYC, one
#: epoch (40 steps of 128) of the quickstart's micro DeiT in bf16 with 2 workers: 15.5 /
#: 16.2 / 15.7 s at equal priority, 14.3 / 14.3 / 15.7 s with the workers niced; the
#: steps alone take 12.8 s. The samples do not change (each draws from its own seeds).
DEFAULT_WORKER_NICE = 10


def _nice_worker(worker_id, increment=DEFAULT_WORKER_NICE, init_fn=None):
    """A data-loader worker's start: lower its priority, then the loader's own init."""
    if increment:
        try:
            os.nice(increment)
        except OSError:  # not allowed here: the worker runs at the parent's priority
            pass
    if init_fn is not None:
        init_fn(worker_id)


def stop_loader_workers(*loops):
    """Stop the persistent worker processes of the loops' data loaders (a later epoch or
    call starts new ones).

    Left alone, they are stopped by the garbage collector whenever it next runs, in the
    same process: during the next run's dataset build in a sweep, where each worker's
    join waited out its 5 s timeout (32 s per run with 3 loaders of 2 workers).
    """
    for loop in loops:
        loader = getattr(loop, 'dataloader', None)
        iterator = getattr(loader, '_iterator', None)  # DataLoader keeps it for persistence
        if iterator is not None and hasattr(iterator, '_shutdown_workers'):
            iterator._shutdown_workers()
            loader._iterator = None


class Runner(MMRunner):
    """mmengine's Runner, except that two runs started in the same second in one work
    dir get two log folders.

    mmengine names a run's log folder (and log file) after the second it started in, so a
    second run in that second (a resume right after a short run, or two quick jobs) would
    write into the first one's log. Here rank 0 adds a suffix (``_1``, ``_2``, ...) when
    the folder exists already, and every rank takes the same name.

    Checkpoints (``load_from`` and ``resume``) are read with
    :func:`kdzoo.models.checkpoint.read_checkpoint` and must fit the model: every key of
    the student present and no unexpected key, where mmengine would load what matches and
    train the rest from random weights. A file cut short or of another kind, or another
    model's checkpoint, stops the run with an error that names the file, before any step
    (and, on resume, before mmengine's "different number of parameter groups"). A student
    written by tools/export.py is named as such, with the way this config takes it.
    """

    @classmethod
    def from_cfg(cls, cfg):
        """mmengine's, on :func:`~kdzoo.engine.config_check.prepare_config` of ``cfg``
        (kdzoo's keyed default hooks set to None removed, one stage switch)."""
        return super().from_cfg(prepare_config(cfg))

    def setup_env(self, env_cfg):
        super().setup_env(env_cfg)
        # Subnormal floats flushed on the CPU (why, and the switch: kdzoo/numerics.py).
        self.flush_denormal = flush_denormals(env_cfg)
        suffix = torch.tensor(0)
        if self.rank == 0:
            while osp.exists(osp.join(self.work_dir, self._suffixed(int(suffix)))):
                suffix += 1
        broadcast(suffix)
        self._timestamp = self._suffixed(int(suffix))

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """mmengine's, with the workers at a lower CPU priority than the training process
        (the loader config's ``worker_nice``, default :data:`DEFAULT_WORKER_NICE`)."""
        nice = DEFAULT_WORKER_NICE
        if isinstance(dataloader, dict):
            dataloader = dict(dataloader)
            nice = dataloader.pop('worker_nice', DEFAULT_WORKER_NICE)
            if not isinstance(nice, int) or isinstance(nice, bool) or not 0 <= nice <= 19:
                raise ValueError(f'worker_nice must be an integer from 0 (the workers at the '
                                 f'training process\'s priority) to 19, got {nice!r}')
        loader = MMRunner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        if nice and getattr(loader, 'num_workers', 0) > 0:
            loader.worker_init_fn = partial(_nice_worker, increment=nice,
                                            init_fn=loader.worker_init_fn)
        return loader

    def _suffixed(self, n):
        return self._timestamp if n == 0 else f'{self._timestamp}_{n}'

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        quiet_mmengine_notices(logger)
        logger.info('subnormal floats flushed to zero: '
                    f"{getattr(self, 'flush_denormal', False)}")
        return logger

    def build_train_loop(self, loop):
        """mmengine's, refusing a schedule without a training step before any work."""
        loop = super().build_train_loop(loop)
        check_schedule(loop)
        return loop

    # ----- loader workers ---------------------------------------------------------------------
    def train(self):
        try:
            return super().train()
        finally:
            stop_loader_workers(self._train_loop, self._val_loop)

    def val(self):
        try:
            return super().val()
        finally:
            stop_loader_workers(self._val_loop)

    def test(self):
        try:
            return super().test()
        finally:
            stop_loader_workers(self._test_loop)

    # ----- checkpoints ----------------------------------------------------------------------
    def resume(self, filename, *args, **kwargs):
        self._resuming = True
        try:
            return super().resume(filename, *args, **kwargs)
        finally:
            self._resuming = False

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=((r'^module\.', ''),)):
        """mmengine's ``load_checkpoint`` (``load_from`` and ``resume`` go through it), but
        strict about the student whatever ``strict`` says, and naming the file in every
        error. ``map_location`` is always the CPU: ``load_state_dict`` copies the weights
        to the model's device, and the optimizer moves its state to its parameters'."""
        if '://' in str(filename) and not is_url(filename) and not osp.exists(filename):
            # Model-zoo prefixes and remote storage (torchvision://, open-mmlab://, s3://):
            # mmengine's loaders; http(s) URLs are downloaded by resolve_checkpoint.
            path, checkpoint = filename, _load_checkpoint(filename, map_location='cpu')
        else:
            path = resolve_checkpoint(filename)
            checkpoint = read_checkpoint(path)
        if not isinstance(checkpoint, dict):
            raise ValueError(f'{path} holds a {type(checkpoint).__name__}, not a checkpoint '
                             'dict; a kdzoo/mmengine checkpoint (.pth) was expected')
        model = self.model.module if is_model_wrapper(self.model) else self.model
        layout = exported_layout(checkpoint, self._student_keys(model))
        if layout is not None:
            raise ValueError(self._exported_message(path, layout, model))
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        state = checkpoint.get('state_dict', checkpoint)
        if isinstance(state, dict):
            metadata = getattr(state, '_metadata', None)  # module versions, kept for loading
            for pattern, replacement in revise_keys:
                state = OrderedDict((re.sub(pattern, replacement, k), v)
                                    for k, v in state.items())
            if metadata is not None:
                state._metadata = metadata
        fit_state_dict(model, state, path,
                       'was saved by another model' if getattr(self, '_resuming', False)
                       else 'does not fit the model of this config')
        if getattr(self, '_resuming', False) and 'meta' not in checkpoint:
            raise ValueError(f'{path} is not a training checkpoint (no meta: epoch, '
                             'iteration, optimizer); --resume takes a checkpoint that '
                             'tools/train.py saved in a work dir')
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {path} (every student key matched)')
        return checkpoint

    @staticmethod
    def _student_keys(model):
        """The student's state dict keys, without the ``student.`` prefix."""
        return [k[len('student.'):].replace('_orig_mod.', '')
                for k in model.state_dict() if k.startswith('student.')]

    def _pretrained_option(self, file, model):
        """How this config's student starts from the weights in ``file`` (the options of
        tools/train.py), or None when its config takes no weights file."""
        from kdzoo.apis.export import student_kind
        try:
            kind, student = student_kind(self.cfg), self.cfg.model.get('student')
        except (AttributeError, KeyError, TypeError):
            return None
        if kind in ('deit', 'dearkd'):
            return f'--cfg-options model.student.pretrained={file}'
        if kind != 'timm':
            return None
        # timm reads a file through the pretrained config's overlay; without the class
        # count there it would drop the classifier of a file with another count.
        classes = getattr(getattr(model, 'student', None), 'num_classes', None)
        if isinstance(student, str):
            return (f"the student dict(type='TimmModel', model_name="
                    f"{student.split(':', 1)[1]!r}, pretrained=True, pretrained_cfg_overlay="
                    f'dict(file={file!r}, num_classes={classes}))')
        return ('--cfg-options model.student.pretrained=True '
                f'model.student.pretrained_cfg_overlay.file={file} '
                f'model.student.pretrained_cfg_overlay.num_classes={classes}')

    def _exported_message(self, path, layout, model):
        """Why a file of tools/export.py cannot be resumed or loaded with ``load_from``,
        and the way this config's student takes it."""
        what = (f'checkpoint {path} is an exported student ({EXPORT_LAYOUTS[layout]}), not '
                'a training checkpoint')
        no_option = 'this config\'s student takes no pretrained weights file'
        if layout == 'mmpretrain':
            use = self._pretrained_option('NEW_FILE', model)
            way = ('it loads with mmpretrain (mmpretrain.apis.get_model with the config that '
                   'tools/export.py printed), not into a kdzoo student; to train from these '
                   'weights, export the training checkpoint again with --to kdzoo --out '
                   'NEW_FILE and use ' + (use or f'kdzoo.get_model(NEW_FILE) ({no_option})'))
            return f'{what}: {way}'
        use = self._pretrained_option(path, model)
        if use:
            way = f'use it with {use}' + (
                f' to train from it, or kdzoo.get_model({path!r}) for inference'
                if layout == 'kdzoo' else '')
        elif layout == 'kdzoo':
            way = f'use it with kdzoo.get_model({path!r}) ({no_option})'
        else:
            way = f'load it into the network with load_state_dict ({no_option})'
        return f'{what}: {way}'

    # Checkpoints that survive a kill at any moment (see kdzoo/engine/atomic_checkpoint.py
    # and AtomicCheckpointHook, which writes the last_checkpoint pointer).
    saves_checkpoints_atomically = True

    @master_only
    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True,
                        backend_args=None):
        """mmengine's ``save_checkpoint``, written to a temporary file and renamed into
        place, so ``out_dir/filename`` is always a complete checkpoint or absent (on
        local disks; other storage keeps mmengine's writing)."""
        def save(folder, name):
            return super(Runner, self).save_checkpoint(
                folder, name, file_client_args, save_optimizer=save_optimizer,
                save_param_scheduler=save_param_scheduler, meta=meta, by_epoch=by_epoch,
                backend_args=backend_args)

        if file_client_args is not None or not isinstance(
                get_file_backend(out_dir, backend_args=backend_args), LocalBackend):
            return save(out_dir, filename)
        save_atomic(lambda tmp: save(osp.dirname(tmp), osp.basename(tmp)),
                    osp.join(out_dir, filename))

    def load_or_resume(self):
        """An automatic resume (``--resume`` without a path) takes the latest complete
        checkpoint of the work dir, also when the process that wrote it was killed
        before updating ``last_checkpoint`` (mmengine trusts the pointer alone). A work
        dir without any checkpoint trains from scratch, as in mmengine, and says so."""
        if self._resume and self._load_from is None and not self._has_loaded:
            latest = latest_checkpoint(self.work_dir)
            pointed = read_pointer(self.work_dir)
            if latest is None and pointed is None:
                # mmengine's convention (a re-run or sweep resumes where it can), without
                # its "Auto resumed from the latest checkpoint None".
                self.logger.info(f'no checkpoint in {self.work_dir} to resume; training '
                                 'from scratch')
                return None
            if latest is None:
                raise FileNotFoundError(
                    f'{osp.join(self.work_dir, "last_checkpoint")} names {pointed}, which is '
                    'missing or incomplete, and the work dir holds no other complete '
                    'checkpoint; give --resume a checkpoint file, or delete last_checkpoint '
                    'to train from scratch')
            if latest is not None and latest != pointed:
                self.logger.warning(
                    f'last_checkpoint names {pointed}, which is missing, cut short or '
                    f'older than {latest}; resuming from {latest}')
            if latest is not None:
                self.logger.info(f'Auto resumed from the latest checkpoint {latest}.')
                self.resume(latest)
                self._has_loaded = True
                return None
        return super().load_or_resume()
