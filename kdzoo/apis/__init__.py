"""kdzoo's Python API: build what a config describes, load weights, read settings.

The tools under tools/ are thin command lines over these functions.
"""
from .analysis import analysis_parser, checkpoint_epoch, per_checkpoint, run_hooked, val_batches
from .configs import configs_root, find_config, list_configs, package_root, tools_root
from .data import MINI_CIFAR10, unpack_archive
from .export import TARGETS as EXPORT_TARGETS, check_target, export_student
from .inference import Predictor, get_model, inference_model
from .model import ConfigError, build_model, build_student, load_config
from .sweep import run_sweep
from .synthesis import SYNTHESIS_KEYS, class_names, input_normalisation, synthesis_settings

__all__ = ['ConfigError', 'EXPORT_TARGETS', 'MINI_CIFAR10', 'Predictor',
           'SYNTHESIS_KEYS', 'analysis_parser', 'build_model', 'build_student',
           'check_target', 'checkpoint_epoch', 'class_names', 'configs_root',
           'export_student', 'find_config', 'get_model', 'inference_model',
           'input_normalisation', 'list_configs', 'load_config', 'package_root',
           'per_checkpoint', 'run_hooked', 'run_sweep', 'synthesis_settings',
           'tools_root', 'unpack_archive', 'val_batches']
