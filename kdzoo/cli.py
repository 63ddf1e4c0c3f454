"""The ``kdzoo`` command: ``kdzoo SUBCOMMAND [ARGS...]`` runs ``tools/SUBCOMMAND.py``
(``check-data`` is ``tools/check_data.py``) from :func:`kdzoo.apis.tools_root`, so the
tools stay the one implementation; ``kdzoo list-configs [PATTERN]`` lists the shipped
configs. ``kdzoo-train``, ``kdzoo-test``, ``kdzoo-export`` and ``kdzoo-synthesize`` are
``kdzoo train`` etc.

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

BUILTIN = {'list-configs': 'Print the shipped configs (kdzoo.list_configs) matching PATTERN'}


def _tools_root():
    from kdzoo.apis import tools_root
    return tools_root()


def available_tools():
    """{subcommand: tool file} of the tools shipped in tools_root()."""
    root = _tools_root()
    return {f[:-3].replace('_', '-'): osp.join(root, f) for f in sorted(os.listdir(root))
            if f.endswith('.py') and not f.startswith(('_', '.'))}


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
             '', 'subcommands:']
    for name, text in sorted(rows.items()):
        lines += textwrap.wrap(text, 88, break_on_hyphens=False,
                               initial_indent=f'  {name:<{width}}',
                               subsequent_indent=' ' * (width + 2)) or [f'  {name}']
    lines += ['', 'A CONFIG may be a file or the name of a shipped config '
              '(kdzoo list-configs).']
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


def list_configs(args):
    import argparse

    from kdzoo.apis import list_configs as shipped
    parser = argparse.ArgumentParser(prog='kdzoo list-configs', description=BUILTIN[
        'list-configs'])
    parser.add_argument('pattern', nargs='?', default='*',
                        help="glob on the name or the folder/name, e.g. 'deit_*'")
    for name in shipped(parser.parse_args(args).pattern):
        print(name)
    return 0


def run_tool(path, args):
    """Run a tool file as ``python path args...`` would, in this process."""
    argv, path0 = sys.argv, sys.path[:]
    sys.argv = [path, *args]
    sys.path.insert(0, osp.dirname(path))  # what ``python tools/x.py`` puts first
    try:
        runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv, sys.path[:] = argv, path0
    return 0


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ('-h', '--help', 'help'):
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command == 'list-configs':
        return list_configs(rest)
    tools = available_tools()
    if command not in tools:
        raise SystemExit(f'kdzoo: unknown subcommand {command!r}; available: '
                         f'{", ".join(sorted([*tools, *BUILTIN]))} (kdzoo --help)')
    return run_tool(tools[command], resolve_config_args(rest))


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
