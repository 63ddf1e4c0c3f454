"""Cosine similarity between the class and the distillation token, at the input of the
first block and at the output of every block (DeiT, Touvron et al. ICML 2021, section 5.2;
DearKD students, Chen et al. CVPR 2022).

    python tools/analysis/token_similarity.py CONFIG CKPT [CKPT ...] [--out FILE.png]
        [--num-batches 4] [--batch-size 32] [--data-root DIR] [--cfg-options K=V ...]

Averaged over images; several checkpoints give one line each.
"""
import numpy as np
import torch
import torch.nn.functional as F

from kdzoo.apis import analysis_parser, per_checkpoint, run_hooked


@torch.no_grad()
def token_similarity(net, inputs):
    """(depth + 1,) mean cosine similarity of tokens 0 (class) and 1 (distillation): at
    the input of block 1, then after each block."""
    if not getattr(net, 'distilled', False):
        raise ValueError('the student has no distillation token')
    sums = [0.] * (len(net.blocks) + 1)

    def record(index, x):
        sums[index] = sums[index] + F.cosine_similarity(x[:, 0].float(), x[:, 1].float(),
                                                        dim=-1).sum().item()

    handles = [net.blocks[0].register_forward_pre_hook(lambda m, args: record(0, args[0]))]
    for i, block in enumerate(net.blocks):
        handles.append(block.register_forward_hook(
            lambda m, args, out, i=i: record(i + 1, out)))
    count = run_hooked(net, inputs, handles)
    return np.array(sums) / count


def plot(results, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, sims in results:
        ax.plot(np.arange(len(sims)), sims, marker='o', label=label)
    ax.set_xticks(np.arange(len(results[0][1])))
    ax.set_xticklabels(['in'] + [str(i) for i in range(1, len(results[0][1]))])
    ax.set_xlabel('block output')
    ax.set_ylabel('cos(class token, distillation token)')
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = analysis_parser(
        __doc__.split('\n')[0], 'token_similarity.png',
        ('python tools/analysis/token_similarity.py dearkd_micro_cifar10 work_dirs/dearkd/epoch_*.pth',
         'python tools/analysis/token_similarity.py my_config.py CKPT --out token_similarity.png')).parse_args(argv)
    results = []
    for ckpt, epoch, _, sims in per_checkpoint(args, token_similarity):
        results.append((f'epoch {epoch}', sims))
        print(f'{ckpt}: ' + ' '.join(f'{s:.3f}' for s in sims))
    plot(results, args.out)
    print(f'plot written to {args.out}')
    return results


if __name__ == '__main__':
    main()
