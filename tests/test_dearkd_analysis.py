"""tools/analysis: average attention distance and class/distillation token similarity."""
import importlib.util
import itertools
import math
import os.path as osp

import pytest
import torch

from conftest import CONFIGS, REPO
from kdzoo.registry import MODELS

torch.set_num_threads(1)


def analysis_tool(name):
    path = osp.join(REPO, 'tools', 'analysis', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'kdzoo_analysis_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny(**kw):
    cfg = dict(type='DearKD', arch=None, embed_dim=36, num_heads=9, depth=2, num_mhca_blocks=1,
               img_size=32, patch_size=4, num_classes=10)
    cfg.update(kw)
    return MODELS.build(cfg).eval()


def content_free(net):
    """No content term: q = k = 0, so attention is the positional term's softmax alone."""
    with torch.no_grad():
        for block in net.blocks:
            block.attn.qkv.weight.zero_()
            block.attn.qkv.bias.zero_()
    return net


def test_uniform_attention_gives_the_mean_pairwise_patch_distance():
    tool = analysis_tool('attention_distance')
    net = content_free(tiny(mhca_init='zeros'))
    dist = tool.attention_distance(net, [torch.randn(2, 3, 32, 32)])
    assert dist.shape == (2, 9)
    cells = list(itertools.product(range(8), range(8)))
    expected = sum(4 * math.dist(a, b) for a in cells for b in cells) / len(cells) ** 2
    assert dist == pytest.approx(expected, rel=1e-4)


def test_convolutional_heads_attend_at_their_offsets():
    tool = analysis_tool('attention_distance')
    net = content_free(tiny(locality_strength=50.0))
    dist = tool.attention_distance(net, [torch.randn(1, 3, 32, 32)])[0]
    # Head 0 looks at its own patch; heads 1-4 one patch away (4 px), except on the border
    # row/column their neighbour is missing from, where they fall back to their own patch.
    assert dist[0] == pytest.approx(0.0, abs=1e-3)
    assert dist[1:5] == pytest.approx([4 * 7 / 8] * 4, rel=1e-3)
    assert all(d > 4 for d in dist[5:])  # the diagonal offsets


def test_token_similarity_of_identical_tokens_is_one():
    tool = analysis_tool('token_similarity')
    net = tiny()
    with torch.no_grad():
        net.dist_token.copy_(net.cls_token)
        net.pos_embed[:, 1] = net.pos_embed[:, 0]
    sims = tool.token_similarity(net, [torch.randn(2, 3, 32, 32)])
    assert sims == pytest.approx([1.0] * 3, abs=1e-5)


def test_token_similarity_matches_a_direct_computation():
    tool = analysis_tool('token_similarity')
    net = tiny()
    x = torch.randn(3, 3, 32, 32)
    sims = tool.token_similarity(net, [x[:2], x[2:]])
    with torch.no_grad():
        t = net.patch_embed(x)
        prefix = [net.cls_token.expand(3, -1, -1), net.dist_token.expand(3, -1, -1)]
        t = torch.cat(prefix + [t], dim=1) + net.pos_embed
        expected = [torch.cosine_similarity(t[:, 0], t[:, 1], dim=-1).mean().item()]
        for block in net.blocks:
            t = block(t)
            expected.append(torch.cosine_similarity(t[:, 0], t[:, 1], dim=-1).mean().item())
    assert sims == pytest.approx(expected, abs=1e-5)


def test_command_lines_write_plots(cifar_tiny, tmp_path):
    options = ['model.student.embed_dim=32', 'model.student.num_heads=4', 'model.student.depth=2',
               'model.student.num_mhca_blocks=1']
    net = MODELS.build(dict(type='DearKD', arch=None, embed_dim=32, num_heads=4, depth=2,
                            num_mhca_blocks=1, img_size=32, patch_size=4, num_classes=10))
    ckpts = []
    for epoch in (1, 2):
        path = tmp_path / f'epoch_{epoch}.pth'
        state = {f'model.{k}': v for k, v in net.state_dict().items()}
        torch.save(dict(state_dict=state, meta=dict(epoch=epoch)), path)
        ckpts.append(str(path))
    config = osp.join(CONFIGS, 'dearkd', 'dearkd_micro_cifar10.py')
    common = ['--num-batches', '1', '--batch-size', '4', '--data-root', cifar_tiny,
              '--device', 'cpu', '--cfg-options', *options]
    out = tmp_path / 'distance.png'
    results = analysis_tool('attention_distance').main(
        [config, *ckpts, '--out', str(out), *common])
    assert [e for e, _ in results] == [1, 2] and out.stat().st_size > 0
    assert results[0][1].shape == (2, 4)
    out = tmp_path / 'similarity.png'
    results = analysis_tool('token_similarity').main([config, ckpts[0], '--out', str(out), *common])
    assert results[0][1].shape == (3,) and out.stat().st_size > 0
