"""kdzoo's Python API: build what a config describes, load weights, read settings.

The tools under tools/ are thin command lines over these functions.
"""
from .analysis import analysis_parser, checkpoint_epoch, per_checkpoint, run_hooked, val_batches
from .configs import configs_root, find_config, list_configs, package_root, tools_root
from .data import MINI_CIFAR10, unpack_archive
from .model import ConfigError, build_model, build_student, load_config
from .synthesis import SYNTHESIS_KEYS, class_names, input_normalisation, synthesis_settings

__all__ = ['ConfigError', 'MINI_CIFAR10', 'SYNTHESIS_KEYS', 'analysis_parser', 'build_model',
           'build_student', 'checkpoint_epoch', 'class_names', 'configs_root', 'find_config',
           'input_normalisation', 'list_configs', 'load_config', 'package_root',
           'per_checkpoint', 'run_hooked', 'synthesis_settings', 'tools_root',
           'unpack_archive', 'val_batches']
