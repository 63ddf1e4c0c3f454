"""mmengine's Runner, with a log folder of its own for every run."""
import os.path as osp

import torch
from mmengine.dist import broadcast
from mmengine.runner import Runner as MMRunner


class Runner(MMRunner):
    """mmengine's Runner, except that two runs started in the same second in one work
    dir get two log folders.

    mmengine names a run's log folder (and log file) after the second it started in, so a
    second run in that second (a resume right after a short run, or two quick jobs) would
    write into the first one's log. Here rank 0 adds a suffix (``_1``, ``_2``, ...) when
    the folder exists already, and every rank takes the same name.
    """

    def setup_env(self, env_cfg):
        super().setup_env(env_cfg)
        suffix = torch.tensor(0)
        if self.rank == 0:
            while osp.exists(osp.join(self.work_dir, self._suffixed(int(suffix)))):
                suffix += 1
        broadcast(suffix)
        self._timestamp = self._suffixed(int(suffix))

    def _suffixed(self, n):
        return self._timestamp if n == 0 else f'{self._timestamp}_{n}'
