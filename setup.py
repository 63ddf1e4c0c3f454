"""kdzoo's package. A wheel (``pip install .``, ``pip wheel .``) carries configs/, tools/
and model-index.yml as ``kdzoo/.mim/{configs,tools,model-index.yml}``, OpenMMLab's layout
(as mmpretrain's setup.py does), so installed kdzoo finds its configs by name and the
``kdzoo`` command runs its tools. The copy is made in the build folder, never in the
source tree; an editable install (``pip install -e .``) uses the repository's folders
(kdzoo.apis.configs.package_root)."""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')
COMMANDS = ('train', 'test', 'export', 'synthesize')


def read_version():
    scope = {}
    with open(osp.join(ROOT, 'kdzoo', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


class BuildPyWithMim(build_py):
    """build_py that also copies configs/, tools/ and model-index.yml into the built
    package's ``.mim`` folder."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # the repository's own folders are used
        mim = osp.join(self.build_lib, 'kdzoo', '.mim')
        for name in MIM_FILES:
            src, dst = osp.join(ROOT, name), osp.join(mim, name)
            if not osp.exists(src):
                raise FileNotFoundError(f'{src} is missing: kdzoo is built from a checkout '
                                        'or an sdist that holds configs/, tools/ and '
                                        'model-index.yml')
            if osp.isdir(dst):
                shutil.rmtree(dst)
            os.makedirs(mim, exist_ok=True)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                    '__pycache__', '*.pyc', '.*'))
            else:
                shutil.copy2(src, dst)


setup(
    name='kdzoo',
    version=read_version(),
    description='Registry-based, config-driven knowledge distillation for vision transformers',
    long_description=open(osp.join(ROOT, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['kdzoo', 'kdzoo.*']),
    package_data={'kdzoo': ['assets/*.tar.gz']},
    cmdclass={'build_py': BuildPyWithMim},
    entry_points={'console_scripts': ['kdzoo=kdzoo.cli:main'] + [
        f'kdzoo-{name}=kdzoo.cli:{name}' for name in COMMANDS]},
    python_requires='>=3.9',
    install_requires=[
        # torch.serialization.add_safe_globals (kdzoo.compat's weights-only loading of
        # mmengine checkpoints) appeared in 2.4; torchvision 0.19 is its release.
        'torch>=2.4,<2.15',
        'torchvision>=0.19,<0.30',
        # timm.layers, build_model_with_cfg and generate_default_cfgs.
        'timm>=0.9.12,<1.1',
        'mmengine>=0.10.3,<0.11',
        'mmcv-lite>=2.1,<2.3',
        'mmpretrain>=1.2,<1.3',
        # numpy.dtypes (the dtype classes allowed in weights-only checkpoints) is 1.25's.
        'numpy>=1.25,<2.5',
        'pyyaml',  # the model index
        'tqdm',
        'matplotlib',
    ],
    extras_require={
        # tensorboard: the TensorBoard test runs instead of being skipped
        'tests': ['pytest>=7', 'pyyaml', 'tensorboard'],
        # mmengine's TensorboardVisBackend
        'tensorboard': ['tensorboard'],
    },
)
