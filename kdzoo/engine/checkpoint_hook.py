"""mmengine's CheckpointHook, with a work dir that stays resumable wherever the run dies."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from kdzoo.registry import HOOKS
from .atomic_checkpoint import POINTER, remove_partial_files, write_text_atomic

# Runtime-info key (saved in every checkpoint): the checkpoints that saving it replaces.
EXPIRED = 'expired_ckpt_ids'


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments), made safe against a process that
    is killed at any moment.

    - The checkpoint file is written atomically by kdzoo's :class:`~kdzoo.engine.Runner`
      (temporary file, then rename).
    - The ``last_checkpoint`` pointer is written atomically too, and only once the
      checkpoint it names is complete.
    - Checkpoints beyond ``max_keep_ckpts`` are deleted after that, not before as in
      mmengine, so the pointer never names a deleted file (with ``max_keep_ckpts=1``
      mmengine deletes the pointer's checkpoint before the new one exists).
    - At the start of a run, temporary files of killed writes are removed, and so is a
      checkpoint that a killed run had been about to delete.

    Remote storage (``backend_args``) keeps mmengine's behaviour.
    """

    def before_train(self, runner):
        super().before_train(runner)
        self._pending_expired = list(runner.message_hub.get_info(EXPIRED, None) or [])
        if not (self._local() and is_main_process()):
            return
        if not getattr(runner, 'saves_checkpoints_atomically', False):
            runner.logger.warning(
                f'{type(runner).__name__} writes checkpoints in place: a run killed while '
                'saving leaves a truncated file; use kdzoo.engine.Runner')
        removed = remove_partial_files(self.out_dir)
        if runner.work_dir != self.out_dir:
            removed += remove_partial_files(runner.work_dir)
        removed += self._remove_expired()
        if removed:
            runner.logger.info(f'Removed what an interrupted run left: {", ".join(removed)}')

    def _local(self):
        return isinstance(self.file_backend, LocalBackend)

    def _remove_expired(self):
        """The checkpoints that the resumed run had been about to delete when it was
        killed (between saving a checkpoint and deleting the one it replaced). They are
        recorded in the checkpoint, so no other file is ever touched."""
        kept = set(getattr(self, 'keep_ckpt_ids', ()))
        removed = []
        for step in self._pending_expired:
            name = self.filename_tmpl.format(step)
            path = osp.join(self.out_dir, name)
            if step not in kept and osp.isfile(path):
                self.file_backend.remove(path)
                removed.append(name)
        return removed

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        # mmengine's bookkeeping, unchanged (the kept ids go into the checkpoint), but
        # the file that drops out is deleted only after the new one and the pointer.
        expired = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        runner.message_hub.update_info(EXPIRED, expired)

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, POINTER), self.last_ckpt)
        for old in expired:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed saves folders
                self.file_backend.rmtree(path)
