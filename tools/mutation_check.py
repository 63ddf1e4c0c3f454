"""Plant each listed bug in a copy of the repository and check that its test file fails.

Every file in ``tests/mutations/`` (one ``.py`` file per planted bug) names the bug, the
file it changes, an exact snippet and its replacement, and the tests that must catch it::

    DESCRIPTION = 'the soft loss swaps the student and the teacher'
    FILE = 'kdzoo/losses/logit_distill.py'
    FIND = '''...'''          # must occur exactly once in FILE
    REPLACE = '''...'''
    TESTS = ['tests/test_losses.py']
    SELECT = 'soft_distill'   # optional: pytest's -k expression

For each one, the repository (its tracked files and the untracked ones git does not
ignore; no ``.venv`` or ``work_dirs``) is copied to a temporary folder, the snippet is
replaced there and ``python -m pytest TESTS -x -q [-k SELECT]`` runs in the copy with the
copy first on ``sys.path``, so the copy's ``kdzoo`` is imported and not the editable
install. The result is ``caught`` (a test failed), ``SURVIVED`` (all passed), ``STALE``
(the snippet no longer occurs exactly once, or the selection runs no test: the list
must follow the code) or ``ERROR`` (pytest could not run the tests). The exit status is
1 unless every mutation was caught. For maintainers and reviewers, not CI::

    python tools/mutation_check.py                      # all, one at a time
    python tools/mutation_check.py soft_loss_swapped -j 2
    python tools/mutation_check.py --list
"""
import argparse
import fnmatch
import os
import os.path as osp
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MUTATIONS = osp.join(REPO, 'tests', 'mutations')
SKIPPED = ('.venv', 'work_dirs', '.git', '.pytest_cache')
KEYS = ('DESCRIPTION', 'FILE', 'FIND', 'REPLACE', 'TESTS')


class Mutation:
    """One planted bug, read from ``tests/mutations/<name>.py``."""

    def __init__(self, path):
        self.name = osp.splitext(osp.basename(path))[0]
        values = runpy.run_path(path)
        missing = [k for k in KEYS if k not in values]
        if missing:
            raise ValueError(f'{path}: missing {missing}; a mutation file sets {KEYS} '
                             '(and optionally SELECT)')
        self.description = values['DESCRIPTION']
        self.file, self.find, self.replace = values['FILE'], values['FIND'], values['REPLACE']
        self.tests = list(values['TESTS'])
        self.select = values.get('SELECT')
        if self.find == self.replace:
            raise ValueError(f'{path}: REPLACE equals FIND, nothing would change')

    def command(self):
        cmd = [sys.executable, '-m', 'pytest', *self.tests, '-x', '-q', '-p',
               'no:cacheprovider']
        return cmd + (['-k', self.select] if self.select else [])

    def apply(self, root):
        """Plant the bug in the copy at ``root``; returns None, or why it is stale."""
        path = osp.join(root, self.file)
        if not osp.isfile(path):
            return f'{self.file} does not exist'
        with open(path, encoding='utf-8') as f:
            text = f.read()
        count = text.count(self.find)
        if count != 1:
            return f'FIND occurs {count} times in {self.file} (must be once)'
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text.replace(self.find, self.replace))
        return None


def load_mutations(names=()):
    """The mutations whose names match one of ``names`` (glob patterns), all if none."""
    files = sorted(f for f in os.listdir(MUTATIONS)
                   if f.endswith('.py') and not f.startswith('_'))
    found = [Mutation(osp.join(MUTATIONS, f)) for f in files]
    if not names:
        return found
    chosen = [m for m in found if any(fnmatch.fnmatch(m.name, n) for n in names)]
    unknown = [n for n in names if not any(fnmatch.fnmatch(m.name, n) for m in found)]
    if unknown:
        raise SystemExit(f'no mutation named {unknown}; the list: '
                         f'{", ".join(m.name for m in found)} (python tools/mutation_check.py '
                         '--list)')
    return chosen


def repository_files():
    """Tracked files and untracked files that git does not ignore, present on disk."""
    out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others',
                          '--exclude-standard'], cwd=REPO, capture_output=True, check=True)
    names = sorted({n for n in out.stdout.decode().split('\0') if n})
    return [n for n in names if n.split('/', 1)[0] not in SKIPPED
            and osp.isfile(osp.join(REPO, n))]


def copy_repository(files, dst):
    for name in files:
        target = osp.join(dst, name)
        os.makedirs(osp.dirname(target), exist_ok=True)
        try:
            shutil.copy2(osp.join(REPO, name), target)
        except FileNotFoundError:
            # An editor's temporary file, listed and then removed before the copy: it is
            # no longer part of the tree.
            continue
    return dst


def environment(root):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([root] + [p for p in env.get('PYTHONPATH', '')
                                                  .split(os.pathsep) if p])
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    return env


def check_imports_copy(root):
    """Fail unless a process started like the tests imports the copy's kdzoo."""
    out = subprocess.run([sys.executable, '-c', 'import kdzoo, os; '
                          'print(os.path.dirname(os.path.abspath(kdzoo.__file__)))'],
                         cwd=root, env=environment(root), capture_output=True, text=True)
    where = out.stdout.strip()
    if out.returncode != 0 or osp.realpath(where) != osp.realpath(osp.join(root, 'kdzoo')):
        raise SystemExit(f'the copy imports kdzoo from {where or out.stderr.strip()!r}, not '
                         f'from {osp.join(root, "kdzoo")}; mutations would not be tested')


def run_one(mutation, files, keep, baseline=False):
    """(status, seconds, detail) of one mutation (or, with ``baseline``, of its tests on
    the unmutated code)."""
    start = time.perf_counter()
    root = tempfile.mkdtemp(prefix=f'kdzoo_mutation_{mutation.name}_')
    try:
        copy_repository(files, root)
        check_imports_copy(root)
        stale = None if baseline else mutation.apply(root)
        if stale:
            return 'STALE', time.perf_counter() - start, stale
        proc = subprocess.run(mutation.command(), cwd=root, env=environment(root),
                              capture_output=True, text=True)
        tail = (proc.stdout + proc.stderr).strip().splitlines()
        last = tail[-1] if tail else ''
        failed = [ln for ln in tail if ln.startswith(('FAILED ', 'ERROR '))]
        if proc.returncode == 1 and failed:
            last = failed[0][:200]  # the test that caught it, and why
        if proc.returncode == 1:
            status = 'FAILS' if baseline else 'caught'
        elif proc.returncode == 0:
            status = 'passes' if baseline else 'SURVIVED'
        elif proc.returncode == 5:
            status, last = 'STALE', f'the selection runs no test ({last})'
        else:
            status = 'ERROR'
        return status, time.perf_counter() - start, last
    finally:
        if keep:
            print(f'  {mutation.name}: copy kept in {root}', flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Plant each bug of tests/mutations/ in a copy of the repository and '
                    'report whether its tests catch it.')
    parser.add_argument('names', nargs='*', help='mutations to run (glob patterns); all if '
                        'none')
    parser.add_argument('-j', '--jobs', type=int, default=1,
                        help='mutations run at once (default 1: each test run uses the CPU)')
    parser.add_argument('--list', action='store_true', help='list the mutations and exit')
    parser.add_argument('--baseline', action='store_true',
                        help='run each mutation\'s tests on the unmutated code instead (they '
                             'must pass, or "caught" means nothing)')
    parser.add_argument('--keep', action='store_true', help='keep the mutated copies')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='also name the test that caught each mutation')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    return args


def main(argv=None):
    args = parse_args(argv)
    mutations = load_mutations(args.names)
    if args.list:
        for m in mutations:
            where = ' '.join(m.tests) + (f' -k {m.select!r}' if m.select else '')
            print(f'{m.name}: {m.description}\n    {m.file} -> {where}')
        return 0
    files = repository_files()
    began = time.perf_counter()
    width = max(len(m.name) for m in mutations)
    good = ('passes',) if args.baseline else ('caught',)

    def work(m):
        status, seconds, detail = run_one(m, files, args.keep, args.baseline)
        shown = args.verbose or status not in good
        print(f'{m.name:<{width}}  {status:<8} {seconds:6.1f} s  {m.description}'
              + (f'\n{"":<{width}}  {detail}' if shown else ''), flush=True)
        return m, status, seconds

    print(f'{len(mutations)} mutation(s), {args.jobs} at a time'
          + (' (baseline: unmutated code)' if args.baseline else ''), flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(work, mutations))
    total = time.perf_counter() - began
    bad = [(m.name, s) for m, s, _ in results if s not in good]
    counts = {}
    for _, status, _ in results:
        counts[status] = counts.get(status, 0) + 1
    summary = ', '.join(f'{n} {s}' for s, n in sorted(counts.items()))
    print(f'{summary}; wall-clock {total:.0f} s')
    if bad:
        print('not ' + ('passing' if args.baseline else 'caught') + ': '
              + ', '.join(f'{n} ({s})' for n, s in bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
