"""What every kdzoo tool's command line shares: a CONFIG that may be a file or the name of
a shipped config, ``--cfg-options`` that also take dict values, and a help text with
examples.

``--cfg-options KEY=VALUE`` follows mmengine's ``DictAction`` (``a=1``, ``a=x,y``,
``a=[1,2]``, ``a=(1,2)``, ``a=True``, ``a=None``) and adds Python literals with dicts,
which mmengine's parser cannot read (it recurses until Python stops it):

    --cfg-options "synthesis.synthesizer.stages=[dict(size=16, iterations=10)]"
    --cfg-options 'model.distill.dkd={"loss": {"type": "DKDLoss"}, "weight": 0.5}'

A value that starts with ``[``, ``(``, ``{`` or ``dict(`` and holds ``dict(`` or ``{`` is
read as a Python literal (numbers, strings,
True/False/None, lists, tuples, dicts and ``dict(key=value, ...)``; JSON's
true/false/null too) and nothing is evaluated. Longer structures are better written in a
child config (``_base_ = ['kdzoo::deit/deit_micro_cifar10.py']`` plus the lines that
change).
"""
import argparse
import ast
import os
import os.path as osp

from mmengine.config import DictAction

CONFIG_HELP = ('a config file, or the name of a config shipped with kdzoo (`kdzoo '
               'list-configs` lists them), e.g. deit_micro_cifar10')
CFG_OPTIONS_HELP = ('override config settings, KEY=VALUE (e.g. train_cfg.max_epochs=10); '
                    'lists as a,b or [a,b]; dicts as Python literals, e.g. '
                    '"KEY=[dict(size=16)]"')
#: The program name of the tool being run: ``'kdzoo train'`` when the ``kdzoo`` command
#: runs it (set by kdzoo.cli), else argparse's own (the file name).
PROG = None
_CONSTANTS = {'True': True, 'False': False, 'None': None, 'true': True, 'false': False,
              'null': None}


class OptionValueError(ValueError):
    """A ``--cfg-options`` value that cannot be read."""


def _literal(node, text):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, text)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List):
        return [_literal(e, text) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e, text) for e in node.elts)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise OptionValueError(f'{text!r}: ** is not allowed in a --cfg-options value')
        return {_literal(k, text): _literal(v, text) for k, v in zip(node.keys, node.values)}
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and not node.args
            and all(k.arg is not None for k in node.keywords)):
        return {k.arg: _literal(k.value, text) for k in node.keywords}
    what = ast.get_source_segment(text, node) or type(node).__name__
    raise OptionValueError(
        f'{text!r}: {what!r} is not a literal; a --cfg-options value with a dict may hold '
        'numbers, quoted strings, True/False/None, lists, tuples, {...} and dict(k=v)')


def parse_option_value(text):
    """A ``--cfg-options`` value: a Python literal when it holds a dict, else what
    mmengine's ``DictAction`` makes of it."""
    stripped = text.strip()
    structure = stripped[:1] in ('[', '(', '{') or stripped.startswith('dict(')
    if ('dict(' not in text and '{' not in text) or not structure:
        # Braces inside a plain value are text: a path with a {data_seed} field.
        return DictAction._parse_iterable(text)
    try:
        tree = ast.parse(text.strip(), mode='eval')
    except SyntaxError as e:
        raise OptionValueError(f'{text!r} is not a Python literal ({e.msg} at column '
                               f'{e.offset}); quote the whole KEY=VALUE for the shell, '
                               'e.g. "KEY=[dict(a=1)]"') from None
    return _literal(tree.body, text)


class ConfigOptionsAction(argparse.Action):
    """``--cfg-options KEY=VALUE ...`` into a dict, values read by
    :func:`parse_option_value`; a malformed item stops the parser with a usage error."""

    def __call__(self, parser, namespace, values, option_string=None):
        options = dict(getattr(namespace, self.dest, None) or {})
        for item in values or []:
            if '=' not in item:
                parser.error(f'{option_string} {item!r}: expected KEY=VALUE')
            key, value = item.split('=', 1)
            try:
                options[key] = parse_option_value(value)
            except (OptionValueError, AssertionError) as e:
                parser.error(f'{option_string} {key}: {e}')
        setattr(namespace, self.dest, options)


def config_path(value):
    """argparse ``type`` of a CONFIG argument: a file, or a shipped config's name."""
    from .configs import find_config
    from .model import ConfigError
    if osp.isfile(value):
        return value
    try:
        return find_config(value)
    except ConfigError as e:
        if value.endswith('.py') or os.sep in value and osp.isdir(osp.dirname(value) or '.'):
            # A path: say so first (the shipped names are rarely what was meant).
            raise argparse.ArgumentTypeError(
                f'config file {value!r} does not exist, and it is not the name of a '
                'shipped config (`kdzoo list-configs` lists them)') from None
        raise argparse.ArgumentTypeError(str(e)) from None


def tool_parser(description, examples=(), **kwargs):
    """An ``ArgumentParser`` whose help ends with ``examples`` (command lines, shown as
    given)."""
    epilog = None
    if PROG is not None:
        kwargs.setdefault('prog', PROG)
    if examples:
        epilog = 'examples:\n' + '\n'.join(f'  {e}' for e in examples)
    return argparse.ArgumentParser(description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   **kwargs)


def add_config_argument(parser, name='config', help=CONFIG_HELP, **kwargs):
    return parser.add_argument(name, type=config_path, help=help, **kwargs)


def add_cfg_options(parser, help=CFG_OPTIONS_HELP):
    return parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction,
                               metavar='KEY=VALUE', help=help)


def add_precision_flags(parser, what='training'):
    """``--amp`` and ``--fp32``: bf16 autocast or float32 for every run, whatever the
    configs' ``env_cfg.precision`` says (default 'auto': bf16 where the device computes it
    natively; see kdzoo/numerics.py)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--amp', action='store_true',
                       help=f'bf16 autocast for {what}, on CPU or GPU')
    group.add_argument('--fp32', action='store_true',
                       help=f"float32 {what} (no autocast), whatever the configs' "
                       'env_cfg.precision says')


def precision_option(args):
    """The ``env_cfg.precision`` that ``--amp``/``--fp32`` ask for, or None."""
    if getattr(args, 'amp', False):
        return 'bf16'
    if getattr(args, 'fp32', False):
        return 'fp32'
    return None


def add_launcher_arguments(parser):
    """``--launcher`` (none, pytorch, slurm) and ``--local-rank`` of the distributed tools;
    :func:`parse_launcher_args` parses and exports the rank."""
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_launcher_args(parser, argv=None):
    """``parser.parse_args(argv)``, with ``LOCAL_RANK`` set from ``--local-rank`` when the
    launcher (e.g. torch.distributed.launch) did not set it."""
    import os
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args
