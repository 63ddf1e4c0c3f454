"""Configs and the models they describe."""
import os.path as osp

from mmengine.config import Config


class ConfigError(ValueError):
    """A config or a command-line setting that cannot work; the message says what to
    change."""


def load_config(config, cfg_options=None):
    """A config file (path) or Config, with ``--cfg-options``-style overrides merged."""
    if isinstance(config, Config):
        cfg = config
    else:
        if not osp.isfile(config):
            raise ConfigError(f'config file {config!r} does not exist')
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(cfg, teacher_weights=True, device='cpu'):
    """The config's model (a Classifier or Distiller) in the kdzoo scope, with the
    config's data preprocessor.

    ``teacher_weights=False`` builds a randomly initialised teacher (``random_init=True``)
    instead of loading the weights it names, for measuring cost or inspecting layers.
    """
    import kdzoo  # noqa: F401  (registries, compatibility fixes)
    from mmengine.registry import DefaultScope

    from kdzoo.numerics import flush_denormals
    from kdzoo.registry import MODELS
    cfg = load_config(cfg)
    flush_denormals(cfg)  # subnormal floats flushed on the CPU: see kdzoo/numerics.py
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    if not teacher_weights:
        random = dict(checkpoint=None, pretrained=False, random_init=True)
        if model_cfg.get('teacher') is not None:
            model_cfg.teacher = dict(model_cfg.teacher, **random)
        if model_cfg.get('teachers'):
            model_cfg.teachers = {name: dict(t, **random) if t is not None else None
                                  for name, t in model_cfg.teachers.items()}
    with DefaultScope.overwrite_default_scope('kdzoo'):
        return MODELS.build(model_cfg).to(device)


def build_student(cfg, checkpoint=None, device='cpu'):
    """The config's student network (``model.student``) in eval mode, with the weights
    of ``checkpoint`` (a kdzoo/mmengine checkpoint of a distiller or classifier, a timm or
    torchvision state dict), loaded strictly."""
    import kdzoo  # noqa: F401
    from mmengine.registry import DefaultScope

    from kdzoo.models.checkpoint import load_state_dict_file
    from kdzoo.models.classifier import build_network
    cfg = load_config(cfg)
    net_cfg = cfg.model.student
    if isinstance(net_cfg, dict):
        net_cfg = dict(net_cfg)
        net_cfg.pop('pretrained', None)
    with DefaultScope.overwrite_default_scope('kdzoo'):
        net = build_network(net_cfg)
    if checkpoint is not None:
        net.load_state_dict(load_state_dict_file(checkpoint))
    return net.to(device).eval()
