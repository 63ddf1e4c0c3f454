"""What a run prints to the console: progress bars that never share a line with a log
record, no bars (no carriage returns) when the console is not a terminal, one summary line
instead of a line per parameter from the optimizer constructor, and per-iteration progress
with the losses during synthesis.

The console is a stand-in terminal (a text buffer that says it is a tty, as both stdout
and stderr); :func:`render` replays what was written to it the way a terminal draws it
(carriage returns, line feeds, cursor-up) and the checks read the resulting screen."""
import io
import logging
import os.path as osp
import re
import sys
import textwrap
import uuid
import warnings

import pytest
import torch

from conftest import CONFIGS, build_runner, load_tool, tiny_resnet, write_tiny_distill_config
from kdzoo.registry import MODELS

RECORD = re.compile(r'\d\d/\d\d \d\d:\d\d:\d\d - mmengine - ')
BAR = re.compile(r'\d+%\|')  # the percentage and left edge of a tqdm bar


class Console(io.StringIO):
    """stdout and stderr at once; a terminal if ``tty``."""

    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.fixture
def console(request, monkeypatch):
    """A :class:`Console` as stdout and stderr for the test's body (set when first used
    there: pytest puts its own capture back between a fixture's setup and the test)."""
    def use():
        out = Console(tty=request.param)
        monkeypatch.setattr(sys, 'stdout', out)
        monkeypatch.setattr(sys, 'stderr', out)
        return out
    return use


def render(text):
    """The rows a terminal shows after ``text`` (colours dropped, trailing blanks cut)."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', text)
    rows, row, col = [[]], 0, 0
    i = 0
    while i < len(text):
        if text.startswith('\x1b[A', i):  # cursor up
            row, i = max(0, row - 1), i + 3
            continue
        ch = text[i]
        i += 1
        if ch == '\r':
            col = 0
        elif ch == '\n':
            row, col = row + 1, 0
            rows.extend([] for _ in range(row + 1 - len(rows)))
        else:
            line = rows[row]
            line.extend(' ' * (col - len(line)))
            line[col:col + 1] = [ch]
            col += 1
    return [''.join(line).rstrip() for line in rows]


def glued(text):
    """The pieces of raw output in which a log record follows other text on its line
    (what a terminal shows as ``...loss=2.325]12/06 02:15:30 - mmengine - INFO ...``)."""
    pieces = re.split(r'[\r\n]', re.sub(r'\x1b\[[0-9;]*m', '', text))
    return [p for p in pieces if RECORD.search(p) and not RECORD.match(p)]


def check_screen(text):
    """Every log record on a row of its own, from its first column, and no bar left."""
    assert not glued(text), glued(text)[:3]
    screen = render(text)
    for row in screen:
        if RECORD.search(row):
            assert RECORD.match(row), f'record not at the start of its row: {row!r}'
            assert not BAR.search(row), f'bar text on a record row: {row!r}'
        assert not BAR.search(row), f'a bar was left on the screen: {row!r}'
    return screen


def _tiny_run(tmp_path, cifar_tiny):
    from mmengine.config import Config
    cfg = Config.fromfile(write_tiny_distill_config(tmp_path / 'tiny.py', cifar_tiny,
                                                    per_class=2, batch_size=10))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = f'terminal_{uuid.uuid4().hex[:8]}'
    cfg.default_hooks.progress_bar.disable = False
    cfg.default_hooks.checkpoint.interval = 1
    cfg.train_cfg.val_interval = 1
    cfg.test_dataloader = cfg.val_dataloader
    runner = build_runner(cfg)
    runner.train()
    runner.test()
    return runner


@pytest.mark.parametrize('console', [True], indirect=True)
def test_training_on_a_terminal_prints_log_records_above_the_bars(tmp_path, cifar_tiny,
                                                                  console):
    console = console()
    previous_warning = warnings.showwarning
    runner = _tiny_run(tmp_path, cifar_tiny)
    text = console.getvalue()
    # The bars were drawn (train, val and test), with the loss.
    for frame in ('epoch 1/1: ', 'val: ', 'test: ', 'loss='):
        assert frame in text
    screen = check_screen(text)
    assert any('Saving checkpoint' in row for row in screen)
    assert any('Epoch(test)' in row and 'joint/top1' in row for row in screen)
    # Nothing per parameter from the optimizer constructor, one summary line instead.
    assert 'paramwise_options' not in text and 'is skipped since' not in text
    summary = [row for row in screen if 'paramwise_cfg: ' in row]
    assert len(summary) == 1 and "the teacher's" in summary[0]
    # The console is back as it was once the bars are gone.
    from kdzoo.engine.progress_hook import _AboveBars
    assert not any(isinstance(getattr(h, 'stream', None), _AboveBars)
                   for h in runner.logger.handlers)
    assert warnings.showwarning is previous_warning


@pytest.mark.parametrize('console', [False], indirect=True)
def test_training_without_a_terminal_prints_plain_lines(tmp_path, cifar_tiny, console):
    console = console()
    _tiny_run(tmp_path, cifar_tiny)
    text = console.getvalue()
    assert '\r' not in text and not BAR.search(text)
    assert 'Epoch(train) [1][2/2]' in text and 'Epoch(val) [1][4/4]' in text
    assert 'paramwise_options' not in text and 'is skipped since' not in text


@pytest.mark.parametrize('console', [True], indirect=True)
def test_warnings_and_records_go_above_an_open_bar(console):
    from mmengine.logging import MMLogger
    from tqdm import tqdm

    from kdzoo.engine.progress_hook import BarSafeConsole
    console = console()
    logger = MMLogger.get_instance(f'terminal_{uuid.uuid4().hex[:8]}')
    shown = BarSafeConsole([logger])
    with warnings.catch_warnings():
        # Printed to stderr, as outside pytest (which records warnings instead).
        warnings.simplefilter('always')
        warnings.showwarning = lambda message, category, filename, lineno, *rest: \
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))
        bar = shown.add(tqdm(total=4, desc='work', leave=False))
        bar.update(1)
        logger.info('a record while the bar is open')
        warnings.warn('a warning while the bar is open')
        bar.update(1)
        bar.close()
        shown.remove(bar)
    text = console.getvalue()
    screen = check_screen(text)
    assert any(row.endswith('a record while the bar is open') for row in screen)
    warning_rows = [row for row in screen if 'UserWarning: a warning' in row]
    assert warning_rows and all(not BAR.search(row) for row in warning_rows)
    assert not any(re.search(r'\|.*UserWarning', piece) for piece in text.split('\r'))


@pytest.mark.parametrize('console', [True], indirect=True)
def test_an_uncaught_exception_clears_the_bars_before_its_traceback(console, monkeypatch):
    from tqdm import tqdm

    from kdzoo.engine.progress_hook import BarSafeConsole
    console = console()
    calls = []

    def print_traceback(*args):
        calls.append(args)
        sys.stderr.write('Traceback (most recent call last):\n')

    monkeypatch.setattr(sys, 'excepthook', print_traceback)
    shown = BarSafeConsole([])
    bar = shown.add(tqdm(total=3, desc='work', leave=False))
    bar.update(1)
    sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)  # as Python does on Ctrl-C
    screen = check_screen(console.getvalue())
    assert 'Traceback (most recent call last):' in screen and len(calls) == 1
    assert not shown.active and sys.excepthook is print_traceback


def test_optimizer_logs_a_summary_and_per_parameter_options_at_debug():
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    model = MODELS.build(dict(
        type='Distiller', student=dict(type='DeiT', arch=None, embed_dim=32, depth=1,
                                       num_heads=2, patch_size=4, img_size=32,
                                       distilled=True, num_classes=10),
        teacher=dict(type='Teacher', random_init=True, model=tiny_resnet())))
    model.student.pos_embed.requires_grad_(False)  # a frozen student parameter
    logger = MMLogger.get_instance(f'terminal_{uuid.uuid4().hex[:8]}', log_level='DEBUG')
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger.addHandler(handler)
    build_optim_wrapper(model, dict(
        constructor='kdzoo.DistillerOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                           custom_keys={'.cls_token': dict(decay_mult=0.0)})))
    info = [r.getMessage() for r in records if r.levelno >= logging.INFO]
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    assert len(info) == 1, info
    decayed = sum(1 for n, p in model.student.named_parameters()
                  if p.requires_grad and p.ndim > 1 and 'cls_token' not in n)
    assert f'{decayed} tensors' in info[0] and 'weight_decay=0.05' in info[0]
    teacher = sum(1 for _ in model.teacher.parameters())
    assert 'weight_decay=0;' in info[0]
    assert f"not optimised: the teacher's {teacher} tensors and 1 frozen tensor" in info[0]
    assert any(m.startswith('paramwise_options -- student.cls_token') for m in debug)
    assert any('pos_embed is skipped since' in m for m in debug)


# ----- synthesis ----------------------------------------------------------------------------
STAGES = [dict(size=8, iterations=2, jitter=1), dict(size=16, iterations=2, jitter=1)]


def _synthesize(tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / 'teacher.pth'
    torch.save(MODELS.build(tiny_resnet()).state_dict(), checkpoint)
    config = tmp_path / 'synth.py'
    micro = osp.join(CONFIGS, 'dearkd', 'df_dearkd_micro_cifar10.py')
    config.write_text(textwrap.dedent(f'''
        _base_ = [{micro!r}]
        model = dict(teacher=dict(model=dict(depth=8, widths=(8, 16, 32)),
                                  checkpoint={str(checkpoint)!r}))
        synthesis = dict(num_images=8, batch_size=4, per_class_in_batch=2, seed=0,
                         synthesizer=dict(stages={STAGES!r}))
    '''))
    load_tool('synthesize').main([str(config), '--out', str(tmp_path / 'synth'),
                                  '--work-dir', str(tmp_path / 'work')])


@pytest.mark.parametrize('console', [True], indirect=True)
def test_synthesis_on_a_terminal_shows_every_iteration_with_its_losses(tmp_path, console,
                                                                       monkeypatch):
    from kdzoo.synthesis import shards
    monkeypatch.setattr(shards.ShardProgress, 'refresh_s', 0.0)  # draw every iteration
    console = console()
    _synthesize(tmp_path)
    text = console.getvalue()
    for shard in (0, 1):
        for i, size in ((1, 8), (2, 8), (3, 16), (4, 16)):
            frame = re.search(rf'shard {shard} {size}px: +\d+%\|[^\r\n]*\| {i}/4 '
                              r'\[[^\]]*<[^\]]*, loss=[\d.]+, ce=[\d.]+, prior=[\d.]+, '
                              r'bn=[\d.]+, div=[\d.]+\]', text)
            assert frame, f'no frame for iteration {i} of shard {shard}'
        assert f'Synthesis shard {shard} done' in text
    assert 'shards (rank 0)' in text
    screen = check_screen(text)
    assert any(re.match(RECORD.pattern + r'INFO - Synthesis shard 1 done .*loss: ', row)
               for row in screen)


@pytest.mark.parametrize('console', [False], indirect=True)
def test_synthesis_without_a_terminal_logs_the_iterations(tmp_path, console, monkeypatch):
    from kdzoo.synthesis import shards
    monkeypatch.setattr(shards.ShardProgress, 'lines_per_shard', 2)
    console = console()
    _synthesize(tmp_path)
    text = console.getvalue()
    assert '\r' not in text and not BAR.search(text)
    lines = re.findall(r'Synthesis shard (\d) \[(\d)/4\] (\d+)px  eta: \S+  loss: [\d.]+  '
                       r'ce: [\d.]+  prior: [\d.]+  bn: [\d.]+  div: [\d.]+', text)
    assert lines == [('0', '2', '8'), ('0', '4', '16'), ('1', '2', '8'), ('1', '4', '16')]
