"""Average attention distance per layer of a ViT student (DearKD, Chen et al. CVPR 2022,
Figure 4; the measure of Dosovitskiy et al. ICLR 2021).

    python tools/analysis/attention_distance.py CONFIG CKPT [CKPT ...] [--out FILE.png]
        [--num-batches 4] [--batch-size 32] [--data-root DIR] [--cfg-options K=V ...]

For every head: the pixel distance between a query patch and the key patches, weighted by
the attention probabilities (re-normalised over the patches, so the class and distillation
tokens do not count), averaged over query patches and images. One checkpoint: distance per
layer (each head a dot, the mean a line). Several (e.g. epoch_*.pth): the mean distance of
each layer over training.
"""
import numpy as np
import torch

from kdzoo.apis import analysis_parser, per_checkpoint, run_hooked


def attention_probs(attn, x):
    """Attention probabilities (B, heads, L, L) of an :class:`Attention` on input ``x``,
    the softmax that scaled_dot_product_attention computes without returning it."""
    q, k, _ = attn.qkv_heads(x)
    logits = (q @ k.transpose(-2, -1)) * attn.head_dim ** -0.5
    bias = attn.attention_bias(x)
    if bias is not None:
        logits = logits + bias
    return logits.float().softmax(dim=-1)


def patch_distances(grid, patch_size):
    """(N, N) pixel distances between the centres of the patches of a square grid."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing='ij')
    pos = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1).float() * patch_size
    return torch.cdist(pos, pos)


@torch.no_grad()
def attention_distance(net, inputs):
    """(layers, heads) mean attention distance in pixels of ``net`` (a DeiT/DearKD) over
    the batches in ``inputs``."""
    prefix = net.num_prefix_tokens
    grid = net.patch_embed.grid_size[0]
    dist = patch_distances(grid, net.patch_embed.patch_size)
    sums = [0.] * len(net.blocks)

    def hook(index):
        def record(module, args):
            probs = attention_probs(module, args[0])[:, :, prefix:, prefix:]
            probs = probs / probs.sum(dim=-1, keepdim=True)
            per_head = (probs * dist.to(probs.device)).sum(dim=-1).mean(dim=2).sum(dim=0)
            sums[index] = sums[index] + per_head.cpu()
        return record

    handles = [b.attn.register_forward_pre_hook(hook(i)) for i, b in enumerate(net.blocks)]
    count = run_hooked(net, inputs, handles)
    return torch.stack([s / count for s in sums]).numpy()


def plot(results, out, mhca_blocks=0):
    """``results``: [(epoch, (layers, heads) array)]."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(results) == 1:
        dist = results[0][1]
        layers = np.arange(1, dist.shape[0] + 1)
        for h in range(dist.shape[1]):
            ax.scatter(layers, dist[:, h], s=10, color='0.6')
        ax.plot(layers, dist.mean(axis=1), marker='o', label='mean over heads')
        if mhca_blocks:
            ax.axvspan(0.5, mhca_blocks + 0.5, color='tab:orange', alpha=0.1, label='MHCA')
        ax.set_xlabel('layer')
    else:
        epochs = [e for e, _ in results]
        means = np.stack([d.mean(axis=1) for _, d in results])
        for layer in range(means.shape[1]):
            ax.plot(epochs, means[:, layer], marker='.', label=f'layer {layer + 1}')
        ax.set_xlabel('epoch')
    ax.set_ylabel('mean attention distance (pixels)')
    ax.legend(fontsize='small', ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = analysis_parser(
        __doc__.split('\n')[0], 'attention_distance.png',
        ('python tools/analysis/attention_distance.py dearkd_micro_cifar10 work_dirs/dearkd/epoch_*.pth',
         'python tools/analysis/attention_distance.py my_config.py CKPT --out attention_distance.png')).parse_args(argv)
    results = []
    net = None
    for ckpt, epoch, net, dist in per_checkpoint(args, attention_distance):
        results.append((epoch, dist))
        print(f'{ckpt} (epoch {epoch}): ' +
              ' '.join(f'{d:.1f}' for d in dist.mean(axis=1)) + ' px per layer')
    plot(sorted(results, key=lambda r: r[0]), args.out, getattr(net, 'num_mhca_blocks', 0))
    print(f'plot written to {args.out}')
    return results


if __name__ == '__main__':
    main()
