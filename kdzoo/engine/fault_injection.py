"""Fault injection with real ``kill -9``: start a tool as a subprocess, kill it with
SIGKILL at a moment drawn from a seeded generator, check what it left, start it again.

The moments are tied to the run's progress rather than to the clock alone, so every life
of the process moves the run forward by a few steps at most and a given count of kills
always fits in the schedule: a kill lands while the process starts (imports, resuming),
during a step, or as soon as a write (a temporary file) is seen. Whether it landed inside
a write is judged afterwards, from the temporary files the dead process left.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

#: How often the watcher looks at the run's files (seconds).
POLL_S = 0.001
MODES = ('startup', 'step', 'write')
#: The most steps one killed life can finish (see KillPlan): a schedule of
#: ``MAX_STEPS_PER_LIFE * kills`` steps or more is never done before the last kill.
MAX_STEPS_PER_LIFE = 5


@dataclass
class FaultReport:
    """What a fault-injection run found; ``ok`` when nothing went wrong."""

    kind: str
    kills: int = 0
    kills_in_write: int = 0
    unreadable: int = 0
    duplicates: int = 0
    missing: int = 0
    finished: bool = False
    seconds: float = 0.0
    problems: list = field(default_factory=list)

    @property
    def ok(self):
        return (self.finished and not self.problems and self.unreadable == 0
                and self.duplicates == 0 and self.missing == 0)

    def summary(self):
        return (f'{self.kind}: {self.kills} kills ({self.kills_in_write} during a write), '
                f'{self.unreadable} unreadable checkpoints, {self.duplicates} duplicate '
                f'and {self.missing} missing images, {len(self.problems)} other problems; '
                f'finished: {"yes" if self.finished else "no"}; {self.seconds:.0f} s; '
                f'{"OK" if self.ok else "FAILED"}')


class KillPlan:
    """When to kill one life of the process.

    ``startup``: ``delay`` seconds after the start (or once ``cap`` steps are done);
    ``step``: ``delay`` seconds after ``steps`` more steps are done (or one step later,
    whichever comes first); ``write``: once ``steps`` more steps are done, ``delay``
    seconds after a temporary file is seen (or one step later, if that write was too
    quick to be seen). ``steps`` and ``cap`` are at most 3,
    so a life finishes at most 3 + 1 steps before the kill and one while it lands.
    """

    def __init__(self, mode, steps, delay, cap=3):
        if mode not in MODES:
            raise ValueError(f'kill mode {mode!r} is not one of {MODES}')
        if not (1 <= steps <= 3 and 1 <= cap <= 3):
            raise ValueError(f'steps and cap must be in [1, 3], got {steps} and {cap}')
        self.mode, self.steps, self.delay, self.cap = mode, steps, delay, cap
        self._armed = None

    @classmethod
    def draw(cls, rng, startup_s, step_s, write_s=0.002):
        """A plan from ``rng``: the delay is up to ``startup_s`` after the start, up to
        ``step_s`` into a step, or up to ``write_s`` after a write was seen."""
        mode = rng.choices(MODES, weights=(1, 2, 3))[0]
        longest = dict(startup=startup_s, step=step_s, write=write_s)[mode]
        return cls(mode, rng.randint(1, 3), rng.uniform(0, longest))

    def due(self, elapsed, progress, writing):
        """``elapsed``: seconds since the start; ``progress``: steps done in this life;
        ``writing``: a temporary file is there."""
        if self.mode == 'startup':
            return elapsed >= self.delay or progress >= self.cap
        if progress < self.steps:
            return False
        if progress >= self.steps + 1:
            return True
        if self._armed is None and (self.mode == 'step' or writing):
            self._armed = elapsed + self.delay
        if self._armed is None:
            return False
        return elapsed >= self._armed

    def __str__(self):
        if self.mode == 'startup':
            return f'startup+{self.delay:.2f}s'
        return f'{self.mode} after {self.steps} step(s)+{self.delay * 1000:.0f}ms'



def tool_command(tool, *args):
    """``python tools/<tool>.py ARGS`` with this interpreter."""
    from kdzoo.apis import tools_root
    return [sys.executable, osp.join(tools_root(), f'{tool}.py'), *map(str, args)]


def child_env():
    env = dict(os.environ)
    # Unbuffered, so the log of a killed process is whole up to the kill; one thread,
    # so that the watcher polling beside it keeps its pace on a small machine.
    env.update(PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    return env


def run_life(cmd, log_path, plan, progress, partials, timeout_s):
    """Start ``cmd`` (its output to ``log_path``) and kill it with SIGKILL when ``plan``
    says so. ``progress()`` counts the run's finished steps, ``partials()`` maps the
    temporary files of unfinished writes to something that tells a file from a new one
    of the same name (e.g. inode and change time). With ``plan=None`` the process runs to
    its end.

    Returns ``(killed, returncode, in_write)``: ``in_write`` lists the temporary files
    that this life left (those of earlier lives, not yet cleaned up, are not its own).
    Raises TimeoutError after ``timeout_s`` seconds (the process is killed first).
    """
    start_progress = progress()
    stale = dict(partials())

    def own_partials():
        return sorted(name for name, ident in partials().items() if stale.get(name) != ident)

    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env())
    start = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                return False, proc.returncode, []
            elapsed = time.monotonic() - start
            if elapsed > timeout_s:
                raise TimeoutError(f'{" ".join(cmd)} made no end after {timeout_s} s; '
                                   f'see {log_path}')
            if plan is not None and plan.due(elapsed, progress() - start_progress,
                                             bool(own_partials())):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True, proc.returncode, own_partials()
            time.sleep(POLL_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def tail(path, n=15):
    try:
        with open(path) as f:
            return ''.join(f.readlines()[-n:])
    except OSError:
        return ''


def inject(report, kills, rng, life_cmd, progress, partials, check, log_dir,
           startup_s, step_s, timeout_s, echo=print):
    """The common loop: ``kills`` killed lives, then one that runs to its end. After every
    life ``check(life, log_path, killed)`` inspects what it left, puts problems into
    ``report`` and returns a line about the state."""
    os.makedirs(log_dir, exist_ok=True)
    start = time.monotonic()
    for life in range(kills + 1):
        plan = KillPlan.draw(rng, startup_s, step_s) if life < kills else None
        log_path = osp.join(log_dir, f'life_{life:03d}.log')
        try:
            killed, rc, in_write = run_life(life_cmd(), log_path, plan, progress, partials,
                                            timeout_s)
        except TimeoutError as e:
            report.problems.append(str(e))
            echo(f'[{report.kind}] life {life}: {e}')
            break
        if killed:
            report.kills += 1
        elif rc != 0:
            report.problems.append(f'life {life} failed with exit code {rc}: '
                                   f'{tail(log_path)}')
        text = check(life, log_path, killed)
        report.kills_in_write += int(bool(killed and in_write))
        if killed:
            what = f'killed ({plan})' + (f' in a write: {", ".join(in_write)}'
                                         if in_write else '')
        else:
            what = f'ended with exit code {rc}'
        echo(f'[{report.kind}] life {life + 1}/{kills + 1}: {what}; {text}')
        if not killed:
            report.finished = rc == 0
            if life < kills:
                report.problems.append(f'the run ended after {life} of {kills} kills: '
                                       'its schedule is too short for that many')
            break
    report.seconds = time.monotonic() - start
    return report
