"""Where kdzoo's configs and tools are: the repository in a source checkout, the package's
``.mim`` folder in an installed wheel (OpenMMLab's layout)."""
import fnmatch
import os
import os.path as osp
import re

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def package_root():
    """The folder that holds ``configs/`` and ``tools/``: ``kdzoo/.mim`` when kdzoo is
    installed from a wheel, else the repository root."""
    mim = osp.join(_PACKAGE, '.mim')
    if osp.isdir(osp.join(mim, 'configs')):
        return mim
    return osp.dirname(_PACKAGE)


def configs_root():
    return osp.join(package_root(), 'configs')


def tools_root():
    return osp.join(package_root(), 'tools')


def _is_config(path):
    # Worked examples keep their loss modules beside their configs.
    with open(path, encoding='utf-8') as f:
        return re.search(r'^(_base_|model)\s*=', f.read(), re.M) is not None


def list_configs(pattern='*'):
    """Names of the shipped configs (``deit/deit_s_distilled``, ...) that match the glob
    ``pattern``; shared pieces under ``_base_`` and the examples' loss modules are not
    listed."""
    root = configs_root()
    names = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != '_base_' and not d.startswith(('.', '__')))
        for f in sorted(files):
            if f.endswith('.py') and not f.startswith('_') and _is_config(osp.join(folder, f)):
                name = osp.relpath(osp.join(folder, f), root)[:-3].replace(os.sep, '/')
                if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(osp.basename(name), pattern):
                    names.append(name)
    return sorted(names)


def find_config(config):
    """A config file path for ``config``: an existing file, or the name of a shipped
    config with or without its folder and ``.py`` (``deit_s_distilled``,
    ``deit/deit_s_distilled``). An unknown name raises a ConfigError that lists close
    matches."""
    from .model import ConfigError
    if osp.isfile(config):
        return config
    name = config[:-3] if config.endswith('.py') else config
    name = name.replace(os.sep, '/')
    if name.startswith('configs/'):
        name = name[len('configs/'):]
    names = list_configs()
    hits = [n for n in names if n == name or n.split('/', 1)[-1] == name]
    if len(hits) == 1:
        return osp.join(configs_root(), hits[0] + '.py')
    if len(hits) > 1:
        raise ConfigError(f'config name {config!r} is ambiguous: {hits}; give the folder too')
    import difflib
    close = difflib.get_close_matches(name, names + [n.split('/', 1)[-1] for n in names], n=5)
    raise ConfigError(f'config {config!r} is neither a file nor a shipped config'
                      + (f'; close names: {close}' if close else '')
                      + '; `kdzoo list-configs` (kdzoo.list_configs()) lists them all')


#: The prefix that names a shipped config as a ``_base_`` (``'kdzoo::deit/deit_s.py'``).
SCOPE_PREFIX = 'kdzoo::'


def shipped_base_path(cfg_path):
    """The file of a ``'kdzoo::FOLDER/NAME.py'`` base: ``configs_root()/FOLDER/NAME.py``,
    in a wheel (``kdzoo/.mim/configs``) and in a source checkout alike. A name that is
    not shipped raises a FileNotFoundError that lists close names."""
    rel = cfg_path[len(SCOPE_PREFIX):]
    path = osp.join(configs_root(), rel)
    if osp.isfile(path):
        return path
    import difflib
    names = [n + '.py' for n in list_configs()]
    close = difflib.get_close_matches(rel, names, n=3)
    raise FileNotFoundError(
        f'_base_ {cfg_path!r}: kdzoo ships no config {rel!r} (looked in {configs_root()})'
        + (f'; close names: {", ".join(SCOPE_PREFIX + c for c in close)}' if close else '')
        + '; `kdzoo list-configs` lists them')


def install_config_scope():
    """Let configs inherit shipped ones as ``_base_ = ['kdzoo::deit/deit_micro_cifar10.py']``,
    as mmpretrain's users write ``'mmpretrain::...'``.

    mmengine resolves ``PKG::path`` bases only for the packages of its own list
    (``mmengine.config.utils.MODULE2PACKAGE``) and finds them through ``pkg_resources``,
    which current setuptools no longer ships. kdzoo resolves its own prefix
    (:func:`shipped_base_path`, which also works in an editable checkout, where there is
    no ``.mim`` folder) and hands every other base to mmengine unchanged. The base is
    read like a relative ``_base_`` path: mmengine would add ``_scope_='kdzoo'`` to each
    of its dicts, which kdzoo's default scope makes redundant. Called when kdzoo is
    imported, so every tool (and any script that imports kdzoo before
    ``Config.fromfile``) understands the prefix.
    """
    from mmengine.config import Config

    # Not added to MODULE2PACKAGE: mmengine's registries would then import
    # ``kdzoo.utils.register_all_modules`` and warn at every run that it is missing.
    mmengine_get_cfg_path = Config.__dict__['_get_cfg_path'].__func__
    if getattr(mmengine_get_cfg_path, 'kdzoo_scope', False):
        return  # installed already

    def _get_cfg_path(cfg_path, filename):
        if isinstance(cfg_path, str) and cfg_path.startswith(SCOPE_PREFIX):
            return shipped_base_path(cfg_path), None
        return mmengine_get_cfg_path(cfg_path, filename)

    _get_cfg_path.kdzoo_scope = True
    Config._get_cfg_path = staticmethod(_get_cfg_path)
