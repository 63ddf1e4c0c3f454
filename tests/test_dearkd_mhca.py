"""MHCA (DearKD, Chen et al. CVPR 2022): MHSA plus a per-head relative positional term."""
import pytest
import torch

import kdzoo  # noqa: F401
from kdzoo.models.students.mhca import MHCA, local_offsets, relative_features
from kdzoo.models.students.vit_blocks import Attention

torch.set_num_threads(1)


def tokens(grid, prefix, dim=32, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, prefix + grid * grid, dim, generator=g)


def offsets(grid):
    """(N, N, 2) integer offset (dx, dy) of key j from query i, row-major patches."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing='ij')
    xs, ys = xs.reshape(-1), ys.reshape(-1)
    return torch.stack([xs[None] - xs[:, None], ys[None] - ys[:, None]], dim=-1)


def test_zeroed_positional_term_equals_mhsa_exactly():
    torch.manual_seed(0)
    mhca = MHCA(32, num_heads=4, num_prefix_tokens=2).eval()
    mhsa = Attention(32, num_heads=4).eval()
    state = {k: v for k, v in mhca.state_dict().items() if k != 'rel_pos_weight'}
    mhsa.load_state_dict(state)
    x = tokens(8, 2)
    with torch.no_grad():
        local = mhca(x)
        mhca.rel_pos_weight.zero_()
        zeroed = mhca(x)
        plain = mhsa(x)
    assert torch.equal(zeroed, plain)
    # The convolutional initialisation does change the output.
    assert not torch.allclose(local, plain, atol=1e-3)


@pytest.mark.parametrize('grid', [5, 8])
def test_bias_is_a_function_of_the_relative_offset_only(grid):
    torch.manual_seed(1)
    mhca = MHCA(32, num_heads=4, num_prefix_tokens=1)
    with torch.no_grad():
        mhca.rel_pos_weight.normal_()
        bias = mhca.position_bias((grid, grid), 'cpu')  # (heads, N, N)
    off = offsets(grid).reshape(-1, 2)
    values = bias.reshape(4, -1)
    keys = (off[:, 0] + grid) * (4 * grid) + (off[:, 1] + grid)
    for key in keys.unique():
        same = values[:, keys == key]
        # Every query/key pair with this offset has the same bias, in every head.
        assert torch.allclose(same, same[:, :1].expand_as(same), atol=1e-5)
    # A different offset gives a different bias for a random (generic) positional term.
    assert values.std(dim=1).min() > 0


def test_bias_is_translation_invariant_across_grids():
    """The same offset has the same bias on an 8x8 and a 14x14 grid (and anywhere on them)."""
    torch.manual_seed(2)
    mhca = MHCA(32, num_heads=4, num_prefix_tokens=2)
    with torch.no_grad():
        mhca.rel_pos_weight.normal_()
        small = mhca.position_bias((8, 8), 'cpu')
        large = mhca.position_bias((14, 14), 'cpu')
    # Query (2, 3) -> key (5, 1) on 8x8 and query (9, 10) -> key (12, 8) on 14x14, (y, x).
    q8, k8 = 2 * 8 + 3, 5 * 8 + 1
    q14, k14 = 9 * 14 + 10, 12 * 14 + 8
    assert torch.allclose(small[:, q8, k8], large[:, q14, k14])
    # Moving both patches by the same shift keeps the bias (a one-patch shift on 8x8).
    assert torch.allclose(small[:, q8, k8], small[:, q8 + 9, k8 + 9])


@pytest.mark.parametrize('prefix', [1, 2])
@pytest.mark.parametrize('grid', [8, 14, 24])
def test_prefix_tokens_and_grids(prefix, grid):
    mhca = MHCA(32, num_heads=4, num_prefix_tokens=prefix)
    x = tokens(grid, prefix, batch=1)
    bias = mhca.attention_bias(x)
    n = prefix + grid * grid
    assert bias.shape == (1, 4, n, n)
    # Prefix tokens get no positional bias, to or from anything.
    assert torch.count_nonzero(bias[:, :, :prefix]) == 0
    assert torch.count_nonzero(bias[:, :, :, :prefix]) == 0
    assert torch.equal(bias[0, :, prefix:, prefix:], mhca.position_bias((grid, grid), 'cpu'))
    assert mhca(x).shape == x.shape


def test_non_square_patch_grid_is_refused():
    mhca = MHCA(32, num_heads=4, num_prefix_tokens=2)
    with pytest.raises(ValueError, match='square'):
        mhca(torch.randn(1, 1 + 64, 32))  # one prefix token short


def test_local_initialisation_peaks_each_head_at_its_own_offset():
    """With a strong locality the positional term alone attends to one kernel offset per
    head: 9 heads act as a 3x3 convolution (Cordonnier et al. 2020)."""
    mhca = MHCA(36, num_heads=9, num_prefix_tokens=1, locality_strength=10.0)
    grid = 7
    with torch.no_grad():
        attn = torch.softmax(mhca.position_bias((grid, grid), 'cpu'), dim=-1)
    centre = 3 * grid + 3
    expected = local_offsets(9)
    assert sorted(expected) == [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    for h, (dx, dy) in enumerate(expected):
        key = (3 + dy) * grid + (3 + dx)
        assert attn[h, centre].argmax().item() == key
        assert attn[h, centre, key] > 0.99


def test_positional_term_is_learned():
    mhca = MHCA(32, num_heads=4, num_prefix_tokens=2)
    mhca(tokens(8, 2)).square().mean().backward()
    assert mhca.rel_pos_weight.grad is not None
    assert mhca.rel_pos_weight.grad.abs().sum() > 0


def test_relative_features_are_cached_per_grid():
    assert relative_features((8, 8), 'cpu') is relative_features((8, 8), 'cpu')
    assert relative_features((8, 8), 'cpu').shape == (64, 64, 3)
