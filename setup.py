from setuptools import find_packages, setup

setup(
    name='kdzoo',
    version='0.1.0',
    description='Registry-based, config-driven knowledge distillation for vision transformers',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['kdzoo', 'kdzoo.*']),
    package_data={'kdzoo': ['assets/*.tar.gz']},
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.1,<2.15',
        'torchvision>=0.16,<0.30',
        'timm>=0.9.12,<1.1',
        'mmengine>=0.10.3,<0.11',
        'mmcv-lite>=2.1,<2.3',
        'mmpretrain>=1.2,<1.3',
        'numpy>=1.24,<2.5',
        'tqdm',
        'matplotlib',
    ],
    extras_require={'tests': ['pytest>=7', 'pyyaml']},
)
