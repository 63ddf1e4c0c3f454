"""kdzoo's registries: every registry a kdzoo config builds from has a 'kdzoo' child, so
builds in the kdzoo scope resolve without falling back (and warning)."""
import subprocess
import sys

import mmengine.registry as mmengine_registry
import mmpretrain.registry as mmpretrain_registry
import pytest

import kdzoo.registry as kdzoo_registry
from conftest import REPO

NAMES = ['MODELS', 'HOOKS', 'METRICS', 'DATASETS', 'TRANSFORMS', 'DATA_SAMPLERS',
         'MODEL_WRAPPERS', 'OPTIM_WRAPPERS', 'BATCH_AUGMENTS', 'OPTIMIZERS',
         'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'VISBACKENDS', 'VISUALIZERS',
         'LOG_PROCESSORS', 'LOOPS', 'EVALUATORS', 'WEIGHT_INITIALIZERS']


@pytest.mark.parametrize('name', NAMES)
def test_lookup_in_the_kdzoo_scope_finds_the_kdzoo_child(name):
    # mmengine's root when there is one; batch augments exist only in mmpretrain
    root = getattr(mmengine_registry, name, None) or getattr(mmpretrain_registry, name)
    with root.switch_scope_and_registry('kdzoo') as registry:
        assert registry is getattr(kdzoo_registry, name)


def test_mmpretrain_entries_build_from_the_kdzoo_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('kdzoo'):
        augment = kdzoo_registry.BATCH_AUGMENTS.build(
            dict(type='Mixup', alpha=0.8))
    assert type(augment).__name__ == 'Mixup'


def test_mmcv_lite_import_warning_is_silenced():
    code = 'import kdzoo, mmcv.cnn.bricks.transformer, mmpretrain.models'
    result = subprocess.run([sys.executable, '-W', 'default', '-c', code], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'MultiScaleDeformableAttention' not in result.stderr
