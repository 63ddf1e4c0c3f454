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


def test_zeroed_positional_term_equals_mhsa():
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
    # The positional channels carry zeros then; the wider kernel rounds differently.
    assert torch.allclose(zeroed, plain, rtol=0, atol=1e-6)
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


def reference_mhca(mhca, x):
    """MHCA as the paper writes it: the (heads, N, N) positional term added to the logits
    (the explicit bias as attn_mask)."""
    return Attention.forward(mhca, x)


def random_mhca(dim, heads, prefix, seed=0):
    torch.manual_seed(seed)
    mhca = MHCA(dim, num_heads=heads, num_prefix_tokens=prefix).eval()
    with torch.no_grad():
        mhca.rel_pos_weight.add_(torch.randn_like(mhca.rel_pos_weight) * 0.3)
    return mhca


@pytest.mark.parametrize('grid,prefix', [(14, 2), (24, 2), (8, 1)], ids=['224', '384', '32'])
def test_mask_free_mhca_matches_the_explicit_positional_term(grid, prefix):
    mhca = random_mhca(48, 6, prefix)
    x = tokens(grid, prefix, dim=48).requires_grad_()
    out = mhca(x)
    ref = reference_mhca(mhca, x)
    # Float rounding: the logits of the convolutional initialisation reach ~1000 at 24x24
    # (|offset|^2), so both forms round at ~1e-4 of a logit.
    assert torch.allclose(out, ref, rtol=0, atol=5e-5 * ref.abs().max().item())
    grads = torch.autograd.grad(out.square().sum(), [mhca.rel_pos_weight, x])
    ref_grads = torch.autograd.grad(ref.square().sum(), [mhca.rel_pos_weight, x])
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-5 * r.abs().max().item())


def test_mask_free_mhca_passes_no_attention_mask(monkeypatch):
    import kdzoo.models.students.mhca as mhca_module
    calls = []
    original = mhca_module.F.scaled_dot_product_attention

    def recording(*args, **kwargs):
        calls.append(kwargs.get('attn_mask'))
        return original(*args, **kwargs)

    monkeypatch.setattr(mhca_module.F, 'scaled_dot_product_attention', recording)
    random_mhca(32, 4, 2)(tokens(8, 2))
    assert calls == [None]


@pytest.mark.parametrize('grid', [14, 24])
def test_bf16_autocast_keeps_the_positional_term_exact(grid):
    """The expanded parts reach ~|p|^2 (85 at 14x14, 265 at 24x24 with centred positions)
    and cancel; under bf16 they would be off by far more than the bias path. MHCA keeps
    its attention in fp32, so bf16 is no worse than the explicit term under bf16."""
    mhca = random_mhca(64, 8, 2)
    x = tokens(grid, 2, dim=64)
    with torch.no_grad():
        exact = reference_mhca(mhca, x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            folded = mhca(x).float()
            biased = reference_mhca(mhca, x).float()
    err, err_bias = (folded - exact).abs().max(), (biased - exact).abs().max()
    assert err <= err_bias * 1.5 + 1e-3
    assert err < 0.02 * exact.abs().max()


def test_checkpoints_keep_their_keys():
    # The positional term is still the (heads, 3) weights: old checkpoints load as they are.
    mhca = MHCA(32, num_heads=4, num_prefix_tokens=2)
    assert set(mhca.state_dict()) == set(Attention(32, num_heads=4).state_dict()) | {
        'rel_pos_weight'}
    assert mhca.rel_pos_weight.shape == (4, 3)


# ----- bf16: the positional term split into exact bf16 channels ------------------------------
def naive_bf16_channels(self, grid, device, scale):
    """The float32 channels rounded to bf16 as they are (no hi/lo split): the plant that
    the bf16 tests must catch."""
    pq, pk = self.position_channels(grid, device)
    return (pq / scale).to(torch.bfloat16), pk.to(torch.bfloat16)


def large_mhca(grid_locality, seed=0):
    torch.manual_seed(seed)
    mhca = MHCA(64, num_heads=8, num_prefix_tokens=2, locality_strength=grid_locality).eval()
    with torch.no_grad():
        mhca.rel_pos_weight.add_(torch.randn_like(mhca.rel_pos_weight) * 0.3)
    return mhca


def exact_position_bias(mhca, grid):
    feats = relative_features((grid, grid), 'cpu').double()
    return torch.einsum('ijf,hf->hij', feats, mhca.rel_pos_weight.detach().double())


@pytest.mark.parametrize('grid,locality', [(14, 1.0), (24, 1.0), (14, 10.0), (24, 10.0)])
def test_split_bf16_channels_carry_the_positional_term(grid, locality):
    """The bf16 channels' products are exact in the kernels' float32 accumulation, so the
    positional logits they give (here summed exactly) are the term to ~2^-17 of the parts;
    rounded to bf16 without the split they are off by whole logits (~20% of the term)."""
    mhca = large_mhca(locality)
    scale = mhca.head_dim ** -0.5
    exact = exact_position_bias(mhca, grid)
    bound = 1e-5 * exact.abs().max().item()
    errors = {}
    for name, channels in (('split', MHCA.split_position_channels),
                           ('naive', naive_bf16_channels)):
        pq, pk = channels(mhca, (grid, grid), 'cpu', scale)
        assert pq.dtype == pk.dtype == torch.bfloat16
        logits = scale * (pq[:, 2:].double() @ pk[:, 2:].double().transpose(1, 2))
        errors[name] = (logits - exact).abs().max().item()
        # Prefix tokens carry zeros: no positional term to or from them.
        assert torch.count_nonzero(pq[:, :2]) == 0 and torch.count_nonzero(pk[:, :2]) == 0
    assert errors['split'] <= bound, errors
    assert errors['naive'] > 100 * bound, errors


def attention_output(mhca, x, plant=None, bias_path=False):
    """The attention output (the input of ``proj``) under bf16 autocast without a
    gradient, as float64."""
    seen = []
    hook = mhca.proj.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    original = MHCA.split_position_channels
    try:
        if plant is not None:
            MHCA.split_position_channels = plant
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            reference_mhca(mhca, x) if bias_path else mhca(x)
    finally:
        MHCA.split_position_channels = original
        hook.remove()
    return seen[0].double()


def float64_attention(mhca, x, weight=None):
    """softmax(Q K^T / sqrt(d) + P) V in float64 from the bf16 q/k/v that autocast gives
    the layer (so the comparison isolates the attention and its positional term), with
    the explicit (heads, N, N) term of ``weight`` (default: the layer's)."""
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        q, k, v = mhca.qkv_heads(x)
    weight = mhca.rel_pos_weight.detach().double() if weight is None else weight
    grid = mhca.grid_of(x.shape[1])
    bias = torch.einsum('ijf,hf->hij', relative_features(grid, 'cpu').double(), weight)
    p = mhca.num_prefix_tokens
    bias = torch.nn.functional.pad(bias, (p, 0, p, 0))
    logits = q.double() @ k.double().transpose(-1, -2) * mhca.head_dim ** -0.5 + bias
    out = logits.softmax(-1) @ v.double()
    return out.transpose(1, 2).reshape(x.shape)


@pytest.mark.parametrize('grid,locality', [(14, 1.0), (24, 1.0), (24, 10.0)])
def test_bf16_evaluation_runs_the_split_kernel_exactly(grid, locality, monkeypatch):
    """Without a gradient for the positional weights, bf16 MHCA runs the fused bf16 kernel
    (no mask, 12 extra channels) and is no further from the float64 attention than the
    explicit term under bf16; the naive bf16 channels are far off."""
    import kdzoo.models.students.mhca as mhca_module
    mhca = large_mhca(locality)
    x = tokens(grid, 2, dim=64)
    calls = []
    original = mhca_module.F.scaled_dot_product_attention

    def recording(q, k, v, **kwargs):
        calls.append((q.dtype, q.shape[-1], kwargs.get('attn_mask')))
        return original(q, k, v, **kwargs)

    monkeypatch.setattr(mhca_module.F, 'scaled_dot_product_attention', recording)
    exact = float64_attention(mhca, x)
    split = attention_output(mhca, x)
    assert calls == [(torch.bfloat16, mhca.head_dim + 12, None)]
    monkeypatch.setattr(mhca_module.F, 'scaled_dot_product_attention', original)
    biased = attention_output(mhca, x, bias_path=True)
    naive = attention_output(mhca, x, plant=naive_bf16_channels)
    err, err_bias = (split - exact).abs().max(), (biased - exact).abs().max()
    bound = min(err_bias * 1.5 + 1e-3, 0.02 * exact.abs().max())
    assert err <= bound, (err, err_bias)
    assert (naive - exact).abs().max() > bound


def positional_gradient(mhca, x, seed=3):
    """d(sum(R * attention output))/d(rel_pos_weight) under bf16 autocast, float64."""
    r = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    seen = []
    hook = mhca.proj.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    mhca.rel_pos_weight.grad = None
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mhca(x)
    hook.remove()
    (seen[0].float() * r).sum().backward()
    return mhca.rel_pos_weight.grad.double()


def float64_positional_gradient(mhca, x, seed=3):
    r = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).double()
    weight = mhca.rel_pos_weight.detach().double().requires_grad_()
    (float64_attention(mhca, x, weight) * r).sum().backward()
    return weight.grad


@pytest.mark.parametrize('grid', [14, 24])
def test_bf16_training_keeps_the_positional_gradient_exact(grid, monkeypatch):
    """With a gradient for the positional weights MHCA runs the float32 kernel under bf16:
    the gradient is within 1% of the float64 one. The split bf16 kernel would pass it
    through the channels' bf16 gradients, where the parts' cancellation makes it ~10x
    worse (the reason :attr:`MHCA.split_bf16_with_grad` is off)."""
    mhca = large_mhca(1.0)
    x = tokens(grid, 2, dim=64)
    exact = float64_positional_gradient(mhca, x)
    bound = 0.01 * exact.abs().max()
    fp32_kernel = positional_gradient(mhca, x)
    assert (fp32_kernel - exact).abs().max() <= bound
    monkeypatch.setattr(MHCA, 'split_bf16_with_grad', True)
    split = positional_gradient(mhca, x)
    assert (split - exact).abs().max() > 5 * bound
