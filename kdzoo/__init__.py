"""kdzoo: registry-based, config-driven knowledge distillation for vision transformers."""
from . import compat  # noqa: F401  (before anything loads a checkpoint)
from .version import __version__  # noqa: F401


def _register_all():
    # Child registries look up their parents' entries without importing them, so
    # mmpretrain's components (transforms, preprocessors, samplers) are imported here.
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    from . import datasets, engine, evaluation, losses, models, synthesis  # noqa: F401


_register_all()
from .apis.inference import Predictor, get_model, inference_model  # noqa: E402,F401

from .apis import find_config, list_configs  # noqa: E402,F401  (after the registries)
from .apis.configs import install_config_scope  # noqa: E402

install_config_scope()  # _base_ = ['kdzoo::deit/deit_s.py'] in users' configs
