"""The feature and relation losses of the zoo against float64 evaluations written from their
papers' equations: FitNets (Romero et al., ICLR 2015), attention transfer (Zagoruyko and
Komodakis, ICLR 2017), similarity-preserving KD (Tung and Mori, ICCV 2019), RKD (Park et
al., CVPR 2019) and PKT (Passalis and Tefas, ECCV 2018).

The references below are written independently of kdzoo's code, in float64 with autograd
for the gradients, one sample, pair or row at a time where that stays fast: attention maps
are summed per sample and resized by a hand-written bilinear interpolation, RKD's
distances are square roots of the sums of squared differences of the distinct pairs and its
angles the dot products of the unit difference vectors, PKT's probabilities are normalised
row by row. kdzoo's losses compute in float32 and must agree to 1e-5 relative (values and
gradients) on CNN maps and tokens, batches of 2 to 64, features scaled up to 1e4 and
near-constant features.
"""
import math

import pytest
import torch

from kdzoo.losses.attention_transfer import ATLoss
from kdzoo.losses.fitnets import FitNetsLoss
from kdzoo.losses.pkt import PKT_EPS, PKTLoss
from kdzoo.losses.rkd import RKDLoss
from kdzoo.losses.similarity_preserving import SimilarityPreservingLoss, SPLoss
from kdzoo.models.distill_term import bind_arguments
from kdzoo.registry import MODELS

RTOL = 1e-5
F64 = torch.float64


# ----- float64 references -----------------------------------------------------------------
def unit(v):
    """v / ||v||_2 of a 1-D float64 tensor; a zero vector stays zero."""
    n = (v * v).sum()
    return v / n.sqrt() if n > 0 else v * 0


def safe_norm(v):
    """||v||_2 of a 1-D float64 tensor, with a zero gradient at 0."""
    n = (v * v).sum()
    return n.sqrt() if n > 0 else n * 0


def ref_fitnets(s, t):
    """Romero et al. eq. 3, as a mean over the elements: sum (s - t)^2 / count."""
    return ((s - t) ** 2).sum() / s.numel()


def bilinear_matrix(n_in, n_out):
    """(n_out, n_in) weights of 1-D linear interpolation, half-pixel centres
    (align_corners=False), a source position below 0 clamped to 0."""
    w = torch.zeros(n_out, n_in, dtype=F64)
    for o in range(n_out):
        src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        frac = src - i0
        w[o, i0] += 1 - frac
        w[o, i1] += frac
    return w


def grid(x, prefix):
    """(B, C, H, W) of a map, or of tokens (B, prefix + H*W, C) without their prefix."""
    if x.dim() == 4:
        return x
    b, n, c = x.shape
    side = math.isqrt(n - prefix)
    return x[:, prefix:].transpose(1, 2).reshape(b, c, side, side)


def ref_at(ss, ts, p=2.0, prefix=(0, 0)):
    """Zagoruyko and Komodakis eq. 2 in the authors' code's form: per pair of layers, the
    mean over samples and positions of (Q_s/|Q_s| - Q_t/|Q_t|)^2, Q = sum_c |A_c|^p; the
    student's map Q resized (bilinear) to the teacher's size first."""
    if not isinstance(ss, (list, tuple)):
        ss, ts = [ss], [ts]
    total = 0
    for s, t in zip(ss, ts):
        s, t = grid(s, prefix[0]), grid(t, prefix[1])
        h, w = t.shape[-2:]
        acc = 0
        for a_s, a_t in zip(s, t):
            q_s = (a_s.abs() ** p).sum(0)
            q_t = (a_t.abs() ** p).sum(0)
            if q_s.shape != q_t.shape:
                q_s = (bilinear_matrix(q_s.shape[0], h) @ q_s
                       @ bilinear_matrix(q_s.shape[1], w).t())
            acc = acc + ((unit(q_s.flatten()) - unit(q_t.flatten())) ** 2).sum()
        total = total + acc / (s.shape[0] * h * w)
    return total


def ref_sp(ss, ts):
    """Tung and Mori eqs. 1-4: sum over pairs of ||G_s - G_t||_F^2 / b^2, G = A A^T with
    L2-normalised rows."""
    if not isinstance(ss, (list, tuple)):
        ss, ts = [ss], [ts]
    total = 0
    for s, t in zip(ss, ts):
        b = s.shape[0]

        def gram(x):
            a = x.reshape(b, -1)
            return torch.stack([unit(torch.stack([(a[i] * a[j]).sum() for j in range(b)]))
                                for i in range(b)])
        total = total + ((gram(s) - gram(t)) ** 2).sum() / b ** 2
    return total


def huber(x):
    ax = x.abs()
    return torch.where(ax <= 1, 0.5 * x * x, ax - 0.5)


def ref_rkd(s, t, wd=25.0, wa=50.0):
    """Park et al. eqs. 3-8: Huber losses of the distance potential (distances over their
    mean over distinct pairs) and the angle potential (cosines at x_j of the triplets of
    distinct samples), each averaged over its distinct tuples."""
    b = s.shape[0]
    pairs = [(i, j) for i in range(b) for j in range(b) if i != j]
    i_idx = torch.tensor([i for i, _ in pairs])
    j_idx = torch.tensor([j for _, j in pairs])

    def distances(x):
        d = ((x[i_idx] - x[j_idx]) ** 2).sum(1).sqrt()
        return d / d.mean()

    def cosines(x):
        # u[j][i] = unit(x_i - x_j); cos at x_j between x_i and x_k
        rows = []
        for j in range(b):
            row = torch.stack([unit(x[i] - x[j]) if i != j else x[j] * 0 for i in range(b)])
            rows.append(row)
        u = torch.stack(rows)
        cos = torch.einsum('jid,jkd->jik', u, u)
        idx = torch.arange(b)
        keep = ((idx.view(1, b, 1) != idx.view(b, 1, 1)) & (idx.view(1, 1, b) != idx.view(b, 1, 1))
                & (idx.view(1, b, 1) != idx.view(1, 1, b)))
        return cos[keep]

    xs, xt = s.reshape(b, -1), t.reshape(b, -1)
    total = 0
    if b >= 2:
        total = total + wd * huber(distances(xs) - distances(xt)).mean()
    if b >= 3:
        total = total + wa * huber(cosines(xs) - cosines(xt)).mean()
    return total


def ref_pkt(s, t, eps=PKT_EPS):
    """Passalis and Tefas, the authors' code's form: cosine kernel (cos + 1) / 2 of
    features over (|x| + eps), rows normalised to probabilities, mean over the b^2 entries
    of p_t log((p_t + eps) / (p_s + eps))."""
    b = s.shape[0]

    def probabilities(x):
        a = x.reshape(b, -1)
        a = torch.stack([r / (safe_norm(r) + eps) for r in a])
        rows = []
        for i in range(b):
            k = (torch.stack([(a[i] * a[j]).sum() for j in range(b)]) + 1) / 2
            rows.append(k / k.sum())
        return torch.stack(rows)
    ps, pt = probabilities(s), probabilities(t)
    return (pt * torch.log((pt + eps) / (ps + eps))).sum() / b ** 2


# ----- comparison ---------------------------------------------------------------------------
def as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def with_grads(fn, s, t, autocast=False):
    """fn's value, its gradient with respect to the student features (leaf copies) and
    that to the teacher's (None when the loss detaches them). ``autocast``: the forward
    under bf16 autocast (the backward outside it, as in training)."""
    s = [v.detach().clone().requires_grad_() for v in as_list(s)]
    t = [v.detach().clone().requires_grad_() for v in as_list(t)]
    args = (s, t) if len(s) > 1 else (s[0], t[0])
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        value = fn(*args)
    grads = torch.autograd.grad(value, s + t, allow_unused=True)
    return value.detach(), grads[:len(s)], grads[len(s):]


def assert_close(got, expected, what, atol):
    got, expected = got.double(), expected.double()
    assert torch.isfinite(got).all(), f'{what}: not finite: {got}'
    err = (got - expected).abs()
    bound = RTOL * expected.abs() + atol
    worst = (err - bound).argmax()
    assert (err <= bound).all(), (f'{what}: {got.flatten()[worst].item()!r} vs '
                                  f'{expected.flatten()[worst].item()!r} (error '
                                  f'{err.flatten()[worst].item():.3g})')


def assert_matches(loss, ref_fn, s, t, what, value_atol=1e-12, grad_atol=0.0):
    """The float32 loss against the float64 reference on the same inputs: the value to
    1e-5 relative (absolute floor ``value_atol``), each gradient entry to 1e-5 relative
    with an absolute floor of 1e-5 times the largest entry plus ``grad_atol``; the
    teacher's features get no gradient (detached)."""
    value, gs, gt = with_grads(loss, s, t)
    ref, rgs, _ = with_grads(ref_fn, [v.double() for v in as_list(s)],
                             [v.double() for v in as_list(t)])
    assert value.dtype == torch.float32
    assert_close(value, ref, f'{what} value', value_atol)
    assert all(g is None for g in gt), f'{what}: the teacher features got a gradient'
    for g, r in zip(gs, rgs):
        assert g is not None and torch.isfinite(g).all(), f'{what}: gradient not finite'
        assert_close(g, r, f'{what} gradient', RTOL * r.abs().max().item() + grad_atol)
    return value


# ----- inputs -------------------------------------------------------------------------------
def feats(shape, seed, kind='normal'):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    if kind == 'normal':
        return x
    if kind == 'relu':  # non-negative, some exact zeros
        return x.clamp_min(0)
    if kind in ('1e3', '1e4'):
        return x * float(kind)
    if kind == 'near_constant':  # every sample the same vector + 1e-6 noise
        base = torch.randn(1, *shape[1:], generator=g) + 3.0
        return base + 1e-6 * torch.randn(*shape, generator=g)
    raise ValueError(kind)


KINDS = ['normal', 'relu', '1e3', '1e4']


def bf16_check(loss, ref_fn, s, t, what):
    """Under bf16 autocast with bf16 inputs: float32 computation on the bf16 values
    (exactly the float32 loss of the rounded inputs), matching float64 on them."""
    s, t = s.bfloat16(), t.bfloat16()
    value, (gs,), _ = with_grads(loss, s, t, autocast=True)
    assert value.dtype == torch.float32 and gs.dtype == torch.bfloat16
    value32, (gs32,), _ = with_grads(loss, s.float(), t.float())
    assert torch.equal(value, value32)
    assert torch.equal(gs, gs32.bfloat16())
    assert_matches(loss, ref_fn, s.float(), t.float(), what)


# ----- FitNets ------------------------------------------------------------------------------
FIT_SHAPES = [(2, 4, 3, 3), (8, 16, 8, 8), (64, 8, 4, 4), (8, 17, 8)]


@pytest.mark.parametrize('shape', FIT_SHAPES)
@pytest.mark.parametrize('kind', KINDS + ['near_constant'])
def test_fitnets_matches_its_definition(shape, kind):
    s, t = feats(shape, 1, kind), feats(shape, 2, kind)
    scale = (s.double() ** 2 + t.double() ** 2).mean().item()
    assert_matches(FitNetsLoss(), ref_fitnets, s, t, f'FitNets {shape} {kind}',
                   value_atol=1e-7 * scale)


def test_fitnets_is_zero_for_equal_features_and_under_bf16_autocast():
    s = feats((8, 16, 8, 8), 3)
    assert FitNetsLoss()(s, s.clone()).item() == 0.0
    bf16_check(FitNetsLoss(), ref_fitnets, s, feats((8, 16, 8, 8), 4), 'FitNets bf16')


def test_fitnets_asks_for_a_connector_when_shapes_differ():
    with pytest.raises(ValueError, match=r'ConvConnector.*Aligner'):
        FitNetsLoss()(torch.zeros(2, 16, 8, 8), torch.zeros(2, 32, 8, 8))
    with pytest.raises(ValueError, match='connector'):
        FitNetsLoss()(torch.zeros(2, 66, 128), torch.zeros(2, 32, 8, 8))


def test_fitnets_trains_a_conv_connector_through_a_term():
    from kdzoo.models.connectors import ConvConnector
    connector = ConvConnector(16, 32)
    s, t = feats((4, 16, 8, 8), 5), feats((4, 32, 8, 8), 6)
    loss = FitNetsLoss()(connector(s), t)
    loss.backward()
    assert connector.conv.weight.grad is not None and connector.conv.weight.grad.abs().sum() > 0


# ----- attention transfer -------------------------------------------------------------------
AT_CASES = [  # student, teacher, num_prefix_tokens
    ((2, 4, 3, 3), (2, 6, 3, 3), 0),
    ((8, 16, 8, 8), (8, 32, 8, 8), 0),
    ((64, 16, 4, 4), (64, 32, 4, 4), 0),
    ((8, 16, 4, 4), (8, 32, 8, 8), 0),        # student upsampled
    ((8, 16, 16, 16), (8, 32, 8, 8), 0),      # student downsampled
    ((8, 6, 5, 7), (8, 3, 3, 4), 0),          # non-square, odd sizes
    ((8, 2 + 64, 32), (8, 32, 8, 8), (2, 0)),  # DeiT tokens against a CNN map
    ((8, 2 + 16, 32), (8, 16, 8, 8), (2, 0)),  # tokens, grid resized
    ((8, 1 + 16, 32), (8, 1 + 16, 24), 1),    # two ViTs
]


@pytest.mark.parametrize('student,teacher,prefix', AT_CASES)
@pytest.mark.parametrize('kind', KINDS)
def test_at_matches_its_definition(student, teacher, prefix, kind):
    s, t = feats(student, 7, kind), feats(teacher, 8, kind)
    pair = prefix if isinstance(prefix, tuple) else (prefix, prefix)
    assert_matches(ATLoss(num_prefix_tokens=prefix), lambda a, b: ref_at(a, b, 2.0, pair),
                   s, t, f'AT {student} {teacher} {kind}', value_atol=1e-9)


@pytest.mark.parametrize('p', [1.0, 3.0, 4.0])
def test_at_other_exponents(p):
    s, t = feats((8, 16, 8, 8), 9), feats((8, 32, 8, 8), 10)
    assert_matches(ATLoss(p=p), lambda a, b: ref_at(a, b, p), s, t, f'AT p={p}',
                   value_atol=1e-9)


def test_at_sums_over_lists_of_layers():
    ss = [feats((8, 16, 8, 8), 11), feats((8, 32, 4, 4), 12)]
    ts = [feats((8, 16, 8, 8), 13), feats((8, 64, 4, 4), 14)]
    value = assert_matches(ATLoss(), ref_at, ss, ts, 'AT lists', value_atol=1e-9)
    single = ATLoss()(ss[0], ts[0]) + ATLoss()(ss[1], ts[1])
    assert torch.allclose(value, single, rtol=1e-6)


def test_at_near_constant_all_zero_and_scale_free():
    s, t = feats((8, 16, 8, 8), 15, 'near_constant'), feats((8, 32, 8, 8), 16, 'near_constant')
    assert_matches(ATLoss(), ref_at, s, t, 'AT near-constant', value_atol=1e-9)
    zero = torch.zeros(8, 16, 8, 8)
    value, (g,), _ = with_grads(ATLoss(), zero, t)
    assert torch.isfinite(value) and torch.isfinite(g).all() and (g == 0).all()
    # per-sample scale invariance, exact: a power of two changes nothing
    scaled = s * torch.tensor([2.0 ** k for k in range(-60, 68, 16)]).view(8, 1, 1, 1)
    assert torch.equal(ATLoss()(scaled, t), ATLoss()(s, t))
    tiny, huge = feats((8, 16, 8, 8), 17) * 1e-20, feats((8, 16, 8, 8), 17) * 1e18
    base = ATLoss()(feats((8, 16, 8, 8), 17), t)
    assert torch.allclose(ATLoss()(tiny, t), base, rtol=1e-5)
    assert torch.allclose(ATLoss()(huge, t), base, rtol=1e-5)


def test_at_under_bf16_autocast():
    bf16_check(ATLoss(), ref_at, feats((8, 16, 8, 8), 18), feats((8, 32, 8, 8), 19), 'AT bf16')
    bf16_check(ATLoss(num_prefix_tokens=(2, 0)), lambda a, b: ref_at(a, b, 2.0, (2, 0)),
               feats((8, 66, 32), 20), feats((8, 32, 8, 8), 21), 'AT bf16 tokens')


@pytest.mark.parametrize('kwargs,message', [
    (dict(p=0.5), 'p must be a finite number >= 1'),
    (dict(p=float('nan')), 'p must be'),
    (dict(p='2'), 'p must be'),
    (dict(num_prefix_tokens=-1), 'num_prefix_tokens must be'),
    (dict(num_prefix_tokens=1.0), 'num_prefix_tokens must be'),
    (dict(num_prefix_tokens=(1, 2, 3)), 'num_prefix_tokens must be'),
])
def test_at_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ATLoss(**kwargs)


@pytest.mark.parametrize('s,t,message', [
    (torch.zeros(2, 67, 8), torch.zeros(2, 4, 8, 8), 'square grid'),
    (torch.zeros(2, 8), torch.zeros(2, 4, 8, 8), r'\(B, C, H, W\)'),
    (torch.zeros(3, 4, 8, 8), torch.zeros(2, 4, 8, 8), 'batch sizes'),
    ([torch.zeros(2, 4, 8, 8)], [torch.zeros(2, 4, 8, 8)] * 2, 'same length'),
    (torch.zeros(2, 4, 8, 8, dtype=torch.long), torch.zeros(2, 4, 8, 8), 'floating-point'),
])
def test_at_rejects_bad_inputs(s, t, message):
    with pytest.raises(ValueError, match=message):
        ATLoss()(s, t)


# ----- similarity-preserving ---------------------------------------------------------------
SP_CASES = [((2, 4, 3, 3), (2, 8, 2, 2)), ((8, 17, 8), (8, 4, 3, 3)),
            ((64, 8, 4, 4), (64, 32)), ((8, 66, 32), (8, 32, 16, 16))]


def example_sp(fs, ft):
    """The example loss kdzoo shipped as configs/examples/sp_loss.py, verbatim in effect."""
    def sim(f):
        a = f.float().flatten(1)
        return torch.nn.functional.normalize(a @ a.t(), dim=1)
    b = fs.shape[0]
    return ((sim(fs) - sim(ft.detach())) ** 2).sum() / (b * b)


@pytest.mark.parametrize('student,teacher', SP_CASES)
@pytest.mark.parametrize('kind', KINDS + ['near_constant'])
def test_sp_matches_its_definition_and_the_former_example(student, teacher, kind):
    s, t = feats(student, 22, kind), feats(teacher, 23, kind)
    b = student[0]
    # Near-constant features: G_s and G_t agree to far below float32's resolution of their
    # unit rows (~1e-7), so the exact gradient is ~0 and float32's is rounding: a sum over
    # b entries of (1e-7) * |dG / dA| ~ 1 / |a|, times 2 / b^2.
    grad_atol = 0.0
    if kind == 'near_constant':
        grad_atol = 2e-7 / (b * s.flatten(1).norm(dim=1).min().item())
    value = assert_matches(SPLoss(), ref_sp, s, t, f'SP {student} {kind}',
                           value_atol=1e-7 / b, grad_atol=grad_atol)
    assert torch.equal(SimilarityPreservingLoss()(s, t), value)
    if kind != 'near_constant':
        assert value.item() == pytest.approx(example_sp(s, t).item(), rel=1e-5, abs=1e-9)


def test_sp_is_bit_for_bit_the_former_example_on_ordinary_features():
    s, t = feats((8, 16, 8, 8), 24), feats((8, 32, 4, 4), 25)
    assert torch.equal(SPLoss()(s, t), example_sp(s, t))


def test_sp_lists_small_features_and_bf16():
    ss = [feats((8, 16, 8, 8), 26), feats((8, 66, 32), 27)]
    ts = [feats((8, 32, 8, 8), 28), feats((8, 32, 4, 4), 29)]
    assert_matches(SPLoss(), ref_sp, ss, ts, 'SP lists', value_atol=1e-9)
    s, t = feats((8, 16, 4, 4), 30), feats((8, 32, 4, 4), 31)
    assert torch.allclose(SPLoss()(s * 1e-20, t), SPLoss()(s, t), rtol=1e-6)
    bf16_check(SPLoss(), ref_sp, s, t, 'SP bf16')


def test_sp_zero_sample_gives_a_zero_row_and_finite_gradients():
    s, t = feats((4, 8, 2, 2), 32), feats((4, 8, 2, 2), 33)
    s[1] = 0
    value, (g,), _ = with_grads(SPLoss(), s, t)
    assert torch.isfinite(value) and torch.isfinite(g).all()
    assert_matches(SPLoss(), ref_sp, s, t, 'SP zero row', value_atol=1e-9)


# ----- RKD ----------------------------------------------------------------------------------
RKD_SHAPES = [(2, 16), (3, 4, 2, 2), (8, 16, 4, 4), (8, 5, 8), (64, 32)]


@pytest.mark.parametrize('shape', RKD_SHAPES)
@pytest.mark.parametrize('kind', KINDS + ['near_constant'])
def test_rkd_matches_its_definition(shape, kind):
    s, t = feats(shape, 34, kind), feats(shape, 35, kind)
    assert_matches(RKDLoss(), ref_rkd, s, t, f'RKD {shape} {kind}', value_atol=1e-9)


@pytest.mark.parametrize('wd,wa', [(1.0, 0.0), (0.0, 1.0), (3.0, 7.0)])
def test_rkd_weights(wd, wa):
    s, t = feats((8, 24), 36), feats((8, 24), 37)
    assert_matches(RKDLoss(distance_weight=wd, angle_weight=wa),
                   lambda a, b: ref_rkd(a, b, wd, wa), s, t, f'RKD {wd} {wa}',
                   value_atol=1e-9)


def test_rkd_is_scale_and_translation_free_and_zero_for_equal_relations():
    s, t = feats((8, 24), 38), feats((8, 24), 39)
    loss = RKDLoss()
    assert torch.equal(loss(s * 2.0 ** 40, t), loss(s, t))
    assert loss(s, s * 3.0 + 5.0).item() == pytest.approx(0.0, abs=1e-5)


def test_rkd_all_equal_samples_and_duplicates_stay_finite():
    t = feats((8, 24), 40)
    same = feats((1, 24), 41).expand(8, 24).contiguous()
    value, (g,), _ = with_grads(RKDLoss(), same, t)
    assert torch.isfinite(value) and torch.isfinite(g).all() and (g == 0).all()
    # with all distances 0: normalised distances 0, cosines 0
    expected = 25 * huber(-ref_distances(t)).mean() + 50 * huber(-ref_cosines(t)).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    s = feats((8, 24), 42)
    s[3] = s[5]  # two identical samples: a zero distance inside the batch
    value, (g,), _ = with_grads(RKDLoss(), s, t)
    assert torch.isfinite(value) and torch.isfinite(g).all()


def ref_distances(x):
    b = x.shape[0]
    d = torch.stack([((x[i] - x[j]) ** 2).sum().sqrt() for i in range(b) for j in range(b)
                     if i != j])
    return d / d.mean()


def ref_cosines(x):
    b = x.shape[0]
    return torch.stack([(unit(x[i] - x[j]) * unit(x[k] - x[j])).sum()
                        for j in range(b) for i in range(b) for k in range(b)
                        if len({i, j, k}) == 3])


def test_rkd_single_sample_batch_is_zero_and_bf16():
    value, (g,), _ = with_grads(RKDLoss(), feats((1, 8), 43), feats((1, 8), 44))
    assert value.item() == 0.0 and (g == 0).all()
    bf16_check(RKDLoss(), ref_rkd, feats((8, 16, 2, 2), 45), feats((8, 32), 46), 'RKD bf16')


@pytest.mark.parametrize('kwargs,message', [
    (dict(distance_weight=-1.0), 'distance_weight must be a finite number >= 0'),
    (dict(angle_weight=float('inf')), 'angle_weight must be'),
    (dict(eps=0.0), 'eps must be a finite number > 0'),
    (dict(eps=None), 'eps must be'),
])
def test_rkd_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RKDLoss(**kwargs)


def test_relation_losses_reject_lists_and_mismatched_batches():
    for loss in (RKDLoss(), PKTLoss(), FitNetsLoss()):
        with pytest.raises(ValueError, match='single source'):
            loss([torch.zeros(2, 4)], [torch.zeros(2, 4)])
        with pytest.raises(ValueError, match='batch sizes'):
            loss(torch.zeros(2, 4), torch.zeros(3, 4))
        with pytest.raises(ValueError, match='at least 2 dimensions'):
            loss(torch.zeros(4), torch.zeros(4))


# ----- PKT ----------------------------------------------------------------------------------
PKT_SHAPES = [(2, 16), (8, 16, 4, 4), (8, 17, 8), (64, 32)]


@pytest.mark.parametrize('shape', PKT_SHAPES)
@pytest.mark.parametrize('kind', KINDS)
def test_pkt_matches_its_definition(shape, kind):
    s, t = feats(shape, 47, kind), feats(shape, 48, kind)
    b = shape[0]
    assert_matches(PKTLoss(), ref_pkt, s, t, f'PKT {shape} {kind}',
                   value_atol=1e-7 * math.log(b + 1) / b)


def test_pkt_near_constant_features_give_a_loss_near_zero():
    s, t = feats((8, 16, 4, 4), 49, 'near_constant'), feats((8, 16, 4, 4), 50, 'near_constant')
    value, (g,), _ = with_grads(PKTLoss(), s, t)
    ref = ref_pkt(s.double(), t.double())
    assert torch.isfinite(value) and torch.isfinite(g).all()
    assert abs(value.item() - ref.item()) <= 1e-7 * math.log(9) / 8  # float32 resolution
    # the gradient's size: float32 resolves cosines to ~1e-7, |d cos / d x| ~ 1 / |x|
    assert g.abs().max().item() <= 1e-6 / s[0].norm().item()


def test_pkt_zero_features_and_bf16():
    s, t = feats((8, 32), 51), feats((8, 32), 52)
    s[2] = 0
    assert_matches(PKTLoss(), ref_pkt, s, t, 'PKT zero row',
                   value_atol=1e-7 * math.log(9) / 8)
    assert PKTLoss()(t, t * 7.0).item() == pytest.approx(0.0, abs=1e-7)
    bf16_check(PKTLoss(), ref_pkt, feats((8, 16, 4, 4), 53, 'relu'),
               feats((8, 32), 54, 'relu'), 'PKT bf16')


@pytest.mark.parametrize('eps', [0.0, -1e-7, float('nan'), '1e-7'])
def test_pkt_rejects_bad_eps(eps):
    with pytest.raises(ValueError, match='eps must be a finite number > 0'):
        PKTLoss(eps=eps)


# ----- registry and binding -----------------------------------------------------------------
@pytest.mark.parametrize('cls,attrs', [
    (FitNetsLoss, {}), (ATLoss, dict(p=2.0, num_prefix_tokens=(0, 0))), (SPLoss, {}),
    (SimilarityPreservingLoss, {}),
    (RKDLoss, dict(distance_weight=25.0, angle_weight=50.0, eps=1e-12)),
    (PKTLoss, dict(eps=1e-7))])
def test_each_loss_builds_from_a_config_and_binds_features_by_name(cls, attrs):
    loss = MODELS.build(dict(type=cls.__name__))
    assert type(loss) is cls
    assert {k: getattr(loss, k) for k in attrs} == attrs
    bound = bind_arguments('term', loss, dict(student_features='student.layer1',
                                              teacher_features='teacher.layer1'))
    assert {a: s.text for a, s in bound.items()} == {
        'student_features': 'student.layer1', 'teacher_features': 'teacher.layer1'}
    assert isinstance(MODELS.build(dict(type='SimilarityPreservingLoss')), SPLoss)
