"""The ``kdzoo`` command: ``kdzoo SUBCOMMAND [ARGS...]`` runs ``tools/SUBCOMMAND.py``
(``check-data`` is ``tools/check_data.py``) from :func:`kdzoo.apis.tools_root`, so the
tools stay the one implementation; ``kdzoo list-configs [PATTERN]`` shows the shipped
configs as a table (family, parameters, FLOPs, top-1 measured with kdzoo and in the
paper, config file), ``kdzoo --version`` the version. ``kdzoo-train``, ``kdzoo-test``,
``kdzoo-export`` and ``kdzoo-synthesize`` are ``kdzoo train`` etc.

Maintainers' tools (``tools/model_zoo.py``, which rewrites the READMEs' tables, and
``tools/fault_injection.py``) are not subcommands: they are run from a checkout.

A leading argument that is not a file but the name of a shipped config
(``kdzoo-train deit_micro_cifar10``) is replaced by that config's path, so configs can be
named from any directory.
"""
import ast
import os
import os.path as osp
import runpy
import sys
import textwrap

BUILTIN = {'list-configs': 'Show the shipped configs matching PATTERN: family, parameters, '
                            'FLOPs, top-1 (kdzoo and paper) and file'}
#: Tools for the project's maintainers, run from a checkout (``python tools/NAME.py``).
MAINTAINER_TOOLS = ('model-zoo', 'fault-injection', 'mutation-check')


def _tools_root():
    from kdzoo.apis import tools_root
    return tools_root()


def available_tools():
    """{subcommand: tool file} of the tools shipped in tools_root()."""
    root = _tools_root()
    tools = {f[:-3].replace('_', '-'): osp.join(root, f) for f in sorted(os.listdir(root))
             if f.endswith('.py') and not f.startswith(('_', '.'))}
    return {name: path for name, path in tools.items() if name not in MAINTAINER_TOOLS}


def _summary(path):
    """The first sentence of a tool's docstring, read without running it."""
    try:
        with open(path, encoding='utf-8') as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ''
    except (OSError, SyntaxError):
        return ''
    return ' '.join(doc.strip().split('\n\n')[0].split()).split('. ')[0].rstrip('.')


def usage():
    tools = available_tools()
    rows = {**{name: _summary(path) for name, path in tools.items()}, **BUILTIN}
    width = max(map(len, rows)) + 2
    lines = ['usage: kdzoo SUBCOMMAND [ARGS...]   (kdzoo SUBCOMMAND --help for its options)',
             '       kdzoo --version', '', 'subcommands:']
    for name, text in sorted(rows.items()):
        lines += textwrap.wrap(text, 88, break_on_hyphens=False,
                               initial_indent=f'  {name:<{width}}',
                               subsequent_indent=' ' * (width + 2)) or [f'  {name}']
    lines += ['', 'A CONFIG may be a file or the name of a shipped config '
              '(kdzoo list-configs).', '', 'examples:',
              '  kdzoo prepare-cifar10',
              '  kdzoo train deit_micro_cifar10 --work-dir work_dirs/micro',
              '  kdzoo test deit_micro_cifar10 work_dirs/micro/epoch_20.pth',
              "  kdzoo list-configs 'dearkd*'"]
    return '\n'.join(lines)


def resolve_config_args(args):
    """Replace the leading positional arguments that are not files but shipped config
    names with their paths; everything else is left as given."""
    from kdzoo.apis import ConfigError, find_config
    out = list(args)
    for i, arg in enumerate(out):
        if arg.startswith('-'):
            break
        if osp.exists(arg):
            continue
        try:
            out[i] = find_config(arg)
        except ConfigError:
            pass  # not a config name: the tool reports its own error
    return out


def _number(value, scale, digits):
    return '-' if value is None else f'{value / scale:.{digits}f}'


def _top1(model, metric):
    from kdzoo.apis.model_index import top1
    found, value = top1(model, metric)
    return f'{value:.2f}' if found and value is not None else '-'


def config_table(names):
    """Rows (header first) of ``kdzoo list-configs``: the model index's family,
    parameters (M), FLOPs (G), training data, top-1 measured with kdzoo and the paper's,
    and the config file; '-' where the index has no entry or figure."""
    from kdzoo.apis import configs_root
    from kdzoo.apis.model_index import KDZOO_TOP1, PAPER_TOP1, zoo_models
    # A config listed twice (a family's own metafile, then the zoo's method table, which
    # comes last in the index) shows its family's entry.
    index = {}
    for m in zoo_models():
        index.setdefault(osp.splitext(m['Config'])[0].split('/', 1)[-1], m)
    rows = [('config', 'family', 'params (M)', 'FLOPs (G)', 'data', 'top-1 kdzoo',
             'top-1 paper', 'file')]
    for name in names:
        model = index.get(name, {})
        meta = model.get('Metadata') or {}
        data = [r.get('Dataset') for r in model.get('Results') or []]
        data = data or ([meta['Training Data']] if meta.get('Training Data') else [])
        rows.append((name.split('/', 1)[-1], model.get('In Collection', '-'),
                     _number(meta.get('Parameters'), 1e6, 2),
                     _number(meta.get('FLOPs'), 1e9, 2), data[0] if data else '-',
                     _top1(model, KDZOO_TOP1), _top1(model, PAPER_TOP1),
                     osp.join(configs_root(), name + '.py')))
    return rows


def list_configs(args):
    import argparse

    from kdzoo.apis import list_configs as shipped
    parser = argparse.ArgumentParser(
        prog='kdzoo list-configs', description=BUILTIN['list-configs'] + '. Top-1 kdzoo '
        'is measured with kdzoo on the data named (CPU-scale runs for the CIFAR-10 micro '
        'configs), top-1 paper is the figure the paper reports.',
        epilog="examples:\n  kdzoo list-configs\n  kdzoo list-configs 'deit_micro*' "
        '--names', formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('pattern', nargs='?', default='*',
                        help="glob on the name or the folder/name, e.g. 'deit_*'")
    parser.add_argument('--names', action='store_true',
                        help='print the names only, one per line (for scripts)')
    opts = parser.parse_args(args)
    names = shipped(opts.pattern)
    if not names:
        raise SystemExit(f'kdzoo list-configs: no shipped config matches {opts.pattern!r}; '
                         '`kdzoo list-configs` shows them all')
    if opts.names:
        print('\n'.join(names))
        return 0
    rows = config_table(names)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    right = {2, 3, 5, 6}
    for row in rows:
        cells = [f'{c:>{w}}' if i in right else f'{c:<{w}}'
                 for i, (c, w) in enumerate(zip(row, widths))]
        print('  '.join(cells + [row[-1]]))
    return 0


def run_tool(path, args, prog=None):
    """Run a tool file as ``python path args...`` would, in this process; ``prog`` is
    the program name its help shows."""
    from kdzoo.apis import tool_args
    argv, path0, prog0 = sys.argv, sys.path[:], tool_args.PROG
    sys.argv = [path, *args]
    sys.path.insert(0, osp.dirname(path))  # what ``python tools/x.py`` puts first
    tool_args.PROG = prog  # the help says 'kdzoo train', as the user typed it
    try:
        runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv, sys.path[:], tool_args.PROG = argv, path0, prog0
    return 0


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ('-h', '--help', 'help'):
        print(usage())
        return 0
    if args[0] in ('-V', '--version'):
        from kdzoo import __version__
        print(f'kdzoo {__version__}')
        return 0
    command, rest = args[0], args[1:]
    if command == 'list-configs':
        return list_configs(rest)
    tools = available_tools()
    if command not in tools:
        hint = ''
        if command in MAINTAINER_TOOLS:
            hint = (f'; {command} is a maintainers\' tool: run it from a checkout, python '
                    f'tools/{command.replace("-", "_")}.py')
        raise SystemExit(f'kdzoo: unknown subcommand {command!r}{hint}; available: '
                         f'{", ".join(sorted([*tools, *BUILTIN]))} (kdzoo --help)')
    return run_tool(tools[command], resolve_config_args(rest), prog=f'kdzoo {command}')


def _alias(command):
    def run():
        return main([command, *sys.argv[1:]])
    run.__name__ = command
    run.__doc__ = f'``kdzoo-{command}``: ``kdzoo {command}``.'
    return run


train = _alias('train')
test = _alias('test')
export = _alias('export')
synthesize = _alias('synthesize')

if __name__ == '__main__':
    sys.exit(main())
