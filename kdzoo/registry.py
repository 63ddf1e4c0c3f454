"""kdzoo's registries.

Each one is a child of mmpretrain's registry of the same kind (itself a child of
mmengine's root), so a config in the ``kdzoo`` scope can name kdzoo's components and
every mmpretrain/mmengine component (transforms, samplers, optimizers, hooks) without
a scope prefix. Model and optimizer wrappers are the exception, see below.
"""
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry
from mmpretrain import registry as mmpre
from mmpretrain.registry import (DATA_SAMPLERS as MMPRE_DATA_SAMPLERS,
                                 DATASETS as MMPRE_DATASETS,
                                 HOOKS as MMPRE_HOOKS,
                                 METRICS as MMPRE_METRICS,
                                 MODELS as MMPRE_MODELS,
                                 TRANSFORMS as MMPRE_TRANSFORMS)

SCOPE = 'kdzoo'

#: Teachers, students, aligners, losses and distillers.
MODELS = Registry('model', parent=MMPRE_MODELS, scope=SCOPE,
                  locations=['kdzoo.models', 'kdzoo.losses'])
# A direct child of mmengine's root: the Runner looks wrappers up in the root registry,
# which finds 'kdzoo.DistillerDDP' only among its own children, not its grandchildren.
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS,
                          scope=SCOPE, locations=['kdzoo.engine'])
HOOKS = Registry('hook', parent=MMPRE_HOOKS, scope=SCOPE,
                 locations=['kdzoo.engine'])
METRICS = Registry('metric', parent=MMPRE_METRICS, scope=SCOPE,
                   locations=['kdzoo.evaluation'])
DATASETS = Registry('dataset', parent=MMPRE_DATASETS, scope=SCOPE,
                    locations=['kdzoo.datasets'])
TRANSFORMS = Registry('transform', parent=MMPRE_TRANSFORMS, scope=SCOPE,
                      locations=['kdzoo.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMPRE_DATA_SAMPLERS,
                         scope=SCOPE, locations=['kdzoo.datasets'])
# Also a direct child of the root, so that 'kdzoo.AutocastOptimWrapper' resolves outside a
# runner's default scope too (mmpretrain adds no optimizer wrappers of its own).
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS,
                          scope=SCOPE, locations=['kdzoo.engine'])

# A direct child of the root too, so that 'kdzoo.DistillerOptimWrapperConstructor' resolves
# wherever build_optim_wrapper is called (mmpretrain adds no constructors of its own).
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope=SCOPE,
                                      locations=['kdzoo.engine'])

# Registries kdzoo adds nothing to. Without a 'kdzoo' child, a build in the kdzoo scope
# still finds mmpretrain's entries but warns every time (optimizers, schedulers,
# visualizers, batch augments...), so each gets an empty child.
BATCH_AUGMENTS = Registry('batch augment', parent=mmpre.BATCH_AUGMENTS, scope=SCOPE)
OPTIMIZERS = Registry('optimizer', parent=mmpre.OPTIMIZERS, scope=SCOPE)
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=mmpre.PARAM_SCHEDULERS, scope=SCOPE)
VISBACKENDS = Registry('vis_backend', parent=mmpre.VISBACKENDS, scope=SCOPE)
VISUALIZERS = Registry('visualizer', parent=mmpre.VISUALIZERS, scope=SCOPE)
LOG_PROCESSORS = Registry('log processor', parent=mmpre.LOG_PROCESSORS, scope=SCOPE)
LOOPS = Registry('loop', parent=mmpre.LOOPS, scope=SCOPE, locations=['kdzoo.engine'])
EVALUATORS = Registry('evaluator', parent=mmpre.EVALUATORS, scope=SCOPE)
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=mmpre.WEIGHT_INITIALIZERS,
                               scope=SCOPE)
