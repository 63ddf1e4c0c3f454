"""A trained student and a few preprocessed batches, for the analysis tools
(tools/analysis/attention_distance.py, token_similarity.py)."""
import os.path as osp
import re

import torch

from .model import ConfigError, build_student, load_config
from .tool_args import add_cfg_options, add_config_argument, tool_parser


def analysis_parser(description, default_out, examples=()):
    """The command line shared by the analysis tools."""
    parser = tool_parser(description, examples)
    add_config_argument(parser)
    parser.add_argument('checkpoints', nargs='+')
    parser.add_argument('--out', default=default_out)
    parser.add_argument('--num-batches', type=int, default=4)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--data-root', help='override the data root of the val data')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    add_cfg_options(parser)
    return parser


def per_checkpoint(args, measure):
    """Yield (checkpoint, epoch, network, measure(network, batches)) for each checkpoint."""
    cfg = load_config(args.config, args.cfg_options)
    for i, ckpt in enumerate(args.checkpoints):
        net = build_student(cfg, ckpt, args.device)
        inputs = val_batches(cfg, args.num_batches, args.batch_size, args.data_root,
                             device=args.device)
        yield ckpt, checkpoint_epoch(ckpt, i), net, measure(net, inputs)


def checkpoint_epoch(path, default):
    """The epoch in an mmengine checkpoint name (epoch_12.pth -> 12), else ``default``."""
    match = re.search(r'epoch_(\d+)\.pth$', osp.basename(path))
    return int(match.group(1)) if match else default


def val_batches(cfg, num_batches=4, batch_size=32, data_root=None, split='val', device='cpu'):
    """Up to ``num_batches`` normalised input batches of the config's val (or test) data,
    without training augmentations."""
    import kdzoo  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from kdzoo.registry import MODELS

    loader_cfg = cfg.get(f'{split}_dataloader')
    if loader_cfg is None:
        raise ConfigError(f'the config has no {split}_dataloader')
    loader_cfg = loader_cfg.copy()
    loader_cfg.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    if data_root is not None:
        loader_cfg.dataset.data_root = data_root
    with DefaultScope.overwrite_default_scope('kdzoo'):
        loader = Runner.build_dataloader(loader_cfg)
        pre_cfg = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor')
        preprocessor = MODELS.build(pre_cfg).to(device)
    for i, data in enumerate(loader):
        if i >= num_batches:
            break
        yield preprocessor(data, training=False)['inputs'].to(device)


def run_hooked(net, inputs, handles):
    """Run the student over ``inputs`` with its measuring hooks, remove the hooks and
    return the number of images seen."""
    count = 0
    try:
        for x in inputs:
            net.forward_features(x)
            count += x.shape[0]
    finally:
        for h in handles:
            h.remove()
    if count == 0:
        raise ValueError('no batches to measure on')
    return count
