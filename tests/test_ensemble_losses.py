"""Multi-teacher logit losses (kdzoo/losses/ensemble.py) against float64 evaluations of their
equations: EnsembleKDLoss (Hinton et al. 2015, You et al. KDD 2017: KD against the
teachers' averaged soft targets, or against their averaged logits) and CAMKDLoss (Zhang,
Chen and Wang, ICASSP 2022: per-sample weights ``(1 - softmax_k(CE_k)) / (T - 1)`` from the
teachers' cross-entropies with the labels).

The references are written independently of kdzoo's code, one sample and one teacher at a
time in float64, with a hand-written log-sum-exp; the ensemble's mixture is
``log sum_k w_k p_k`` taken class by class over the teachers. kdzoo computes in float32 and
must agree to 1e-5 relative, values and gradients to the student's logits, from 1 to 3
teachers, for logits of +-1e4, leads of 100 and a confident teacher next to a uniform one.
"""
import math

import pytest
import torch

from kdzoo.losses.ensemble import (CAMKDLoss, EnsembleKDLoss, camkd_weights,
                                   ensemble_log_probs)
from kdzoo.losses.logit_distill import LOGIT_STD_EPS, SoftDistillLoss
from kdzoo.models.distill_term import bind_arguments
from kdzoo.registry import MODELS

RTOL = 1e-5


# ----- float64 references -----------------------------------------------------------------
def lse(v):
    """log(sum(exp(v))) of a 1-D float64 tensor, shifted by its maximum."""
    m = v.max()
    return m + torch.log(torch.exp(v - m).sum())


def log_softmax(v):
    return v - lse(v)


def ref_standardize(z):
    """Z-score of one row: (z - mean) / (population std + 1e-7) (Sun et al., Algorithm 1)."""
    c = z - z.mean()
    var = (c * c).mean()
    std = var.sqrt() if var > 0 else var * 0
    return c / (std + LOGIT_STD_EPS)


def kl(log_p, log_q):
    """KL(p || q) = sum p (log p - log q) of two log-distributions (p > 0 everywhere)."""
    return (torch.exp(log_p) * (log_p - log_q)).sum()


def equal_or(weights, count):
    if weights is None:
        return [1.0 / count] * count
    total = sum(weights)
    return [w / total for w in weights]


def ref_mixture(rows, tau, weights, average):
    """log of the ensemble distribution of one sample's teacher rows (float64)."""
    if average == 'logits':
        return log_softmax(sum(w * r for w, r in zip(weights, rows)) / tau)
    logs = [math.log(w) + log_softmax(r / tau) for w, r in zip(weights, rows) if w > 0]
    per_class = torch.stack(logs, dim=1)  # (K, teachers)
    return torch.stack([lse(per_class[c]) for c in range(per_class.shape[0])])


def ref_ensemble(zs, teachers, tau=1.0, reduction='batchmean', average='probabilities',
                 weights=None, logit_std=False):
    """tau^2 * KL(p_ens || p_s) summed over the samples, over N ('batchmean') or N*K."""
    weights = equal_or(weights, len(teachers))
    total = 0
    for n in range(zs.shape[0]):
        s, rows = zs[n], [t[n] for t in teachers]
        if logit_std:
            s, rows = ref_standardize(s), [ref_standardize(r) for r in rows]
        total = total + kl(ref_mixture(rows, tau, weights, average), log_softmax(s / tau))
    return total * tau ** 2 / (zs.numel() if reduction == 'deit' else zs.shape[0])


def ref_camkd_weights(teachers, labels):
    """[T][N] python floats: (1 - softmax over teachers of CE_k) / (T - 1); 1 for T = 1."""
    count = len(teachers)
    out = [[None] * len(labels) for _ in range(count)]
    for n, y in enumerate(labels.tolist()):
        ce = torch.stack([-log_softmax(t[n].detach().double())[y] for t in teachers])
        share = torch.exp(ce - lse(ce))
        for k in range(count):
            out[k][n] = 1.0 if count == 1 else ((1 - share[k]) / (count - 1)).item()
    return out


def ref_camkd(zs, teachers, labels, tau=1.0, reduction='batchmean'):
    """sum_n sum_k w_kn tau^2 KL(p_k || p_s), over N ('batchmean') or N*K."""
    weights = ref_camkd_weights(teachers, labels)
    total = 0
    for n in range(zs.shape[0]):
        log_ps = log_softmax(zs[n] / tau)
        for k, t in enumerate(teachers):
            total = total + weights[k][n] * kl(log_softmax(t[n] / tau), log_ps)
    return total * tau ** 2 / (zs.numel() if reduction == 'deit' else zs.shape[0])


# ----- inputs -------------------------------------------------------------------------------
def logits(n, k, seed, kind='normal', scale=3.0):
    g = torch.Generator().manual_seed(seed)
    if kind == 'normal':
        return torch.randn(n, k, generator=g) * scale
    if kind == 'extreme':  # up to +-1e4
        return (torch.rand(n, k, generator=g) * 2 - 1) * 1e4
    if kind == 'low':  # every logit below -1e4
        return -2e4 - torch.rand(n, k, generator=g) * 1e4
    if kind == 'offset':  # rows +-1e4 apart, logits within a row a few units apart
        return (torch.rand(n, 1, generator=g) * 2 - 1) * 1e4 + scale * torch.randn(
            n, k, generator=g)
    if kind == 'near_constant':  # each row c_i + 1e-4 noise
        return (torch.rand(n, 1, generator=g) * 100 - 50) + 1e-4 * torch.randn(n, k, generator=g)
    raise ValueError(kind)


def labels_for(n, k, seed):
    return torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed + 100))


def with_lead(z, labels, lead):
    """z with each row's ``labels`` logit set to ``lead`` above its largest other logit."""
    z = z.clone()
    rows = torch.arange(len(z))
    z[rows, labels] = -math.inf
    z[rows, labels] = z.max(dim=1).values + lead
    return z


def teachers_for(count, n, k, seed, kind='normal', scale=3.0):
    return [logits(n, k, seed + 11 * (i + 1), kind, scale) for i in range(count)]


# ----- comparison ---------------------------------------------------------------------------
def with_grad(fn, zs, teachers):
    """fn's value and its gradient to the student's logits (a leaf copy)."""
    zs = zs.detach().clone().requires_grad_()
    value = fn(zs, [t.detach().clone() for t in teachers])
    (g,) = torch.autograd.grad(value, zs)
    return value.detach(), g


def assert_close(got, expected, what, atol):
    """|got - expected| <= RTOL * |expected| + atol, everything finite."""
    got, expected = got.double(), expected.double()
    assert torch.isfinite(got).all(), f'{what}: not finite: {got}'
    err = (got - expected).abs()
    bound = RTOL * expected.abs() + atol
    worst = (err - bound).argmax()
    assert (err <= bound).all(), (f'{what}: {got.flatten()[worst].item()!r} vs '
                                  f'{expected.flatten()[worst].item()!r} (error '
                                  f'{err.flatten()[worst].item():.3g})')


def floors(zs, teachers, tau, denom, logit_std=False):
    """Absolute floors for entries near 0: float32 resolves a sum to about 1e-7 of its
    terms. The KL's terms are up to tau^2 times the largest |log-probability| (of the
    student, a teacher or the teachers' mean) per sample; a gradient entry's, that over
    tau (and times 1 / (smallest row std + eps) with logit standardisation): (value, grad)."""
    rows = torch.cat([zs, *teachers, sum(teachers) / len(teachers)]).double()
    factor = 1.0
    if logit_std:
        std = (rows - rows.mean(1, keepdim=True)).square().mean(1).sqrt()
        factor = max(1.0, 1 / (std.min().item() + LOGIT_STD_EPS))
        rows = torch.stack([ref_standardize(r) for r in rows])
    size = max(1.0, max(log_softmax(r / tau).abs().max().item() for r in rows))
    value = 1e-7 * tau ** 2 * size * zs.shape[0] / denom
    return value, 1e-7 * tau * size * factor / denom


def assert_matches(loss_fn, ref_fn, zs, teachers, tau, what, reduction='batchmean',
                   logit_std=False):
    value, g = with_grad(loss_fn, zs, teachers)
    ref, rg = with_grad(ref_fn, zs.double(), [t.double() for t in teachers])
    assert value.dtype == torch.float32 and g.dtype == zs.dtype
    denom = zs.numel() if reduction == 'deit' else zs.shape[0]
    value_floor, grad_floor = floors(zs, teachers, tau, denom, logit_std)
    assert_close(value, ref, f'{what} value', value_floor)
    assert_close(g, rg, f'{what} gradient', RTOL * rg.abs().max().item() + grad_floor)


def ensemble(**kwargs):
    loss = EnsembleKDLoss(**kwargs)
    return lambda zs, teachers: loss(zs, teachers)


def camkd(labels, **kwargs):
    loss = CAMKDLoss(**kwargs)
    return lambda zs, teachers: loss(zs, teachers, labels)


SHAPES = [(n, k) for n in (1, 4, 64) for k in (2, 10, 1000)]
AVERAGES = ('probabilities', 'logits')


# ----- the references themselves ----------------------------------------------------------
def test_reference_mixture_is_the_textbook_mean_of_probabilities():
    rows = [logits(1, 10, s)[0].double() for s in range(3)]
    for weights in ([1 / 3] * 3, [0.2, 0.5, 0.3]):
        textbook = torch.log(sum(w * torch.softmax(r / 2.0, 0) for w, r in zip(weights, rows)))
        assert torch.allclose(ref_mixture(rows, 2.0, weights, 'probabilities'), textbook,
                              rtol=1e-12, atol=0)


# ----- EnsembleKDLoss -----------------------------------------------------------------------
@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('count', [1, 2, 3])
def test_ensemble_matches_its_definition(shape, count):
    n, k = shape
    seed = n + k + count
    zs, ts = logits(n, k, seed), teachers_for(count, n, k, seed)
    for average, tau in (('probabilities', 4.0), ('logits', 2.0)):
        assert_matches(ensemble(tau=tau, average=average),
                       lambda s, t: ref_ensemble(s, t, tau, average=average), zs, ts, tau,
                       f'ensemble {shape} x{count} {average}')


@pytest.mark.parametrize('average', ['probabilities', 'logits'])
@pytest.mark.parametrize('reduction', ['batchmean', 'deit'])
@pytest.mark.parametrize('logit_std', [False, True])
def test_ensemble_options_match_their_definition(average, reduction, logit_std):
    n, k, tau = 16, 10, 2.0
    zs, ts = logits(n, k, 1), teachers_for(3, n, k, 1)
    for weights in (None, [1.0, 3.0, 0.5], [0, 2, 1]):
        kwargs = dict(tau=tau, reduction=reduction, average=average, weights=weights,
                      logit_std=logit_std)
        assert_matches(ensemble(**kwargs), lambda s, t: ref_ensemble(s, t, **kwargs), zs, ts,
                       tau, f'ensemble {kwargs}', reduction, logit_std)


@pytest.mark.parametrize('kind', ['extreme', 'low', 'offset', 'near_constant'])
@pytest.mark.parametrize('average', ['probabilities', 'logits'])
@pytest.mark.parametrize('tau,logit_std', [(1.0, False), (4.0, False), (2.0, True)])
def test_ensemble_is_exact_for_extreme_logits(kind, average, tau, logit_std):
    n, k = 16, 10
    zs, ts = logits(n, k, 5, kind), teachers_for(2, n, k, 5, kind)
    assert_matches(ensemble(tau=tau, average=average, logit_std=logit_std),
                   lambda s, t: ref_ensemble(s, t, tau, average=average, logit_std=logit_std),
                   zs, ts, tau, f'ensemble {kind} {average} tau {tau}', logit_std=logit_std)


@pytest.mark.parametrize('tau', [1.0, 4.0])
@pytest.mark.parametrize('lead', [20.0, 100.0])
@pytest.mark.parametrize('who', ['student', 'teachers', 'both'])
def test_ensemble_is_exact_for_any_lead(tau, lead, who):
    n, k = 8, 10
    zs, ts = logits(n, k, 3), teachers_for(3, n, k, 3)
    if who in ('student', 'both'):
        zs = with_lead(zs, labels_for(n, k, 3), lead)
    if who in ('teachers', 'both'):  # confident teachers, each on its own classes
        ts = [with_lead(t, labels_for(n, k, 4 + i), lead) for i, t in enumerate(ts)]
    for average in ('probabilities', 'logits'):
        assert_matches(ensemble(tau=tau, average=average),
                       lambda s, t: ref_ensemble(s, t, tau, average=average), zs, ts, tau,
                       f'ensemble lead {lead} ({who}) {average} tau {tau}')


def test_the_mixture_is_exact_for_a_confident_teacher_next_to_a_uniform_one():
    """One teacher one-hot (a lead of 1e4), the other uniform: the mixture puts
    (1 + 1/K) / 2 on the confident class and 1 / (2K) on every other, to float32's
    resolution; the loss and its gradient match the float64 evaluation."""
    n, k = 4, 10
    top = labels_for(n, k, 0)
    confident = with_lead(torch.zeros(n, k), top, 1e4)
    uniform = torch.zeros(n, k)
    for tau in (1.0, 4.0):
        got = ensemble_log_probs([confident, uniform], tau)
        expected = torch.full((n, k), math.log(0.5 / k), dtype=torch.float64)
        expected[torch.arange(n), top] = math.log(0.5 + 0.5 / k)
        assert_close(got, expected, f'mixture tau {tau}', atol=1e-6)
        zs = logits(n, k, 1)
        assert_matches(ensemble(tau=tau), lambda s, t: ref_ensemble(s, t, tau), zs,
                       [confident, uniform], tau, f'confident + uniform, tau {tau}')


def test_the_mixture_is_exact_where_every_teachers_probability_underflows():
    """Two teachers confident on different classes by 200: every other class has a
    probability of about e^-200 under both, 0 in float32. Its log is still about -200 (a
    log of the mean probabilities would be -inf)."""
    n, k = 4, 10
    a = with_lead(torch.zeros(n, k), torch.zeros(n, dtype=torch.long), 200.0)
    b = with_lead(torch.zeros(n, k), torch.ones(n, dtype=torch.long), 200.0)
    for tau in (1.0, 2.0):
        got = ensemble_log_probs([a, b], tau)
        expected = torch.stack([ref_mixture([a[i].double(), b[i].double()], tau, [0.5, 0.5],
                                            'probabilities') for i in range(n)])
        assert expected[:, 2:].max() < -90 and torch.isfinite(expected).all()
        assert_close(got, expected, f'underflowing mixture tau {tau}', atol=1e-6)
        zs = logits(n, k, 2)
        assert_matches(ensemble(tau=tau), lambda s, t: ref_ensemble(s, t, tau), zs, [a, b],
                       tau, f'underflowing mixture loss tau {tau}')


@pytest.mark.parametrize('average', ['probabilities', 'logits'])
@pytest.mark.parametrize('logit_std', [False, True])
def test_ensemble_of_one_or_identical_teachers_is_soft_distill(average, logit_std):
    n, k, tau = 32, 100, 4.0
    zs, zt = logits(n, k, 7), logits(n, k, 8)
    single = SoftDistillLoss(tau=tau, reduction='batchmean', logit_std=logit_std)
    expected, expected_g = with_grad(lambda s, t: single(s, t[0]), zs, [zt])
    cases = [('a tensor', None, lambda t: t[0], [zt]),
             ('a list of one', None, list, [zt]),
             ('two identical', None, list, [zt, zt]),
             ('three identical, weighted', [1, 2, 5], tuple, [zt, zt, zt])]
    for what, weights, pack, teachers in cases:
        loss = EnsembleKDLoss(tau=tau, average=average, logit_std=logit_std, weights=weights)
        value, g = with_grad(lambda s, t: loss(s, pack(t)), zs, teachers)
        assert value.item() == pytest.approx(expected.item(), rel=RTOL), what
        assert torch.allclose(g, expected_g, rtol=RTOL, atol=RTOL * expected_g.abs().max()), what


def test_ensemble_deit_reduction_is_soft_distills_default():
    zs, zt = logits(8, 10, 1), logits(8, 10, 2)
    expected = SoftDistillLoss(tau=2.0)(zs, zt)
    got = EnsembleKDLoss(tau=2.0, reduction='deit')(zs, [zt])
    assert got.item() == pytest.approx(expected.item(), rel=RTOL)


def test_ensemble_weights_are_normalised_and_a_zero_weight_drops_a_teacher():
    n, k, tau = 8, 10, 2.0
    zs, (a, b) = logits(n, k, 3), teachers_for(2, n, k, 3)
    wild = logits(n, k, 9, 'extreme')
    for average in AVERAGES:
        scaled = EnsembleKDLoss(tau=tau, average=average, weights=[1, 3])(zs, [a, b])
        unit = EnsembleKDLoss(tau=tau, average=average, weights=[0.25, 0.75])(zs, [a, b])
        assert scaled.item() == pytest.approx(unit.item(), rel=1e-6)
        ref = ref_ensemble(zs.double(), [a.double(), b.double()], tau, average=average,
                           weights=[0.25, 0.75])
        assert scaled.item() == pytest.approx(ref.item(), rel=RTOL)
        dropped = EnsembleKDLoss(tau=tau, average=average, weights=[0, 2])(zs, [wild, b])
        alone = SoftDistillLoss(tau=tau, reduction='batchmean')(zs, b)
        assert dropped.item() == pytest.approx(alone.item(), rel=RTOL)


def test_the_two_averages_differ_for_different_teachers():
    zs, ts = logits(8, 10, 4), teachers_for(2, 8, 10, 4, scale=5.0)
    probs = EnsembleKDLoss(tau=1.0, average='probabilities')(zs, ts).item()
    logit = EnsembleKDLoss(tau=1.0, average='logits')(zs, ts).item()
    assert abs(probs - logit) > 1e-2 * abs(probs)


@pytest.mark.parametrize('logit_std', [False, True])
def test_ensemble_under_bf16_autocast_is_float32_on_the_rounded_inputs(logit_std):
    n, k, tau = 16, 100, 4.0
    zs = with_lead(logits(n, k, 2), labels_for(n, k, 2), 30.0).bfloat16()
    ts = [t.bfloat16() for t in teachers_for(2, n, k, 2)]
    loss = EnsembleKDLoss(tau=tau, logit_std=logit_std)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        zs_leaf = zs.clone().requires_grad_()
        value = loss(zs_leaf, ts)
    (g,) = torch.autograd.grad(value, zs_leaf)  # backward outside autocast, as in training
    assert value.dtype == torch.float32 and g.dtype == torch.bfloat16
    value32, g32 = with_grad(lambda s, t: loss(s, t), zs.float(), [t.float() for t in ts])
    assert torch.equal(value, value32.detach()) and torch.equal(g, g32.bfloat16())
    assert_matches(lambda s, t: loss(s, t),
                   lambda s, t: ref_ensemble(s, t, tau, logit_std=logit_std), zs.float(),
                   [t.float() for t in ts], tau, 'ensemble bf16-rounded inputs',
                   logit_std=logit_std)


# ----- CAMKDLoss ----------------------------------------------------------------------------
def test_reference_camkd_weights_follow_the_formula():
    """(1 - softmax_k(CE)) / (T - 1) from the textbook softmax, by hand, for 3 teachers."""
    ts = teachers_for(3, 4, 10, 0)
    y = labels_for(4, 10, 0)
    w = ref_camkd_weights([t.double() for t in ts], y)
    for n in range(4):
        ce = [-torch.log_softmax(t[n].double(), 0)[y[n]].item() for t in ts]
        e = [math.exp(c) for c in ce]
        for k in range(3):
            assert w[k][n] == pytest.approx((1 - e[k] / sum(e)) / 2, rel=1e-12)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('count', [1, 2, 3])
def test_camkd_matches_its_definition(shape, count):
    n, k = shape
    seed = 2 * n + k + count
    zs, ts = logits(n, k, seed), teachers_for(count, n, k, seed)
    y = labels_for(n, k, seed)
    for tau in (1.0, 4.0):
        assert_matches(camkd(y, tau=tau), lambda s, t: ref_camkd(s, t, y, tau), zs, ts, tau,
                       f'CAMKD {shape} x{count} tau {tau}')


@pytest.mark.parametrize('reduction', ['batchmean', 'deit'])
@pytest.mark.parametrize('kind', ['normal', 'extreme', 'low', 'offset', 'near_constant'])
def test_camkd_is_exact_for_extreme_logits(reduction, kind):
    n, k, tau = 16, 10, 4.0
    zs, ts = logits(n, k, 6, kind), teachers_for(3, n, k, 6, kind)
    y = labels_for(n, k, 6)
    assert_matches(camkd(y, tau=tau, reduction=reduction),
                   lambda s, t: ref_camkd(s, t, y, tau, reduction), zs, ts, tau,
                   f'CAMKD {kind} {reduction}', reduction)


@pytest.mark.parametrize('lead', [20.0, 100.0])
def test_camkd_is_exact_for_confident_right_and_wrong_teachers(lead):
    """One teacher leads by ``lead`` on the label, another on a wrong class, a third is
    uniform: weights near 1/2, 0 and 1/2 (CE 0, lead, log K): a weight is at most
    1 / (T - 1), so the two better teachers share the weight almost equally."""
    n, k, tau = 8, 10, 4.0
    y = labels_for(n, k, 1)
    wrong = (y + 1) % k
    ts = [with_lead(logits(n, k, 2), y, lead), with_lead(logits(n, k, 3), wrong, lead),
          torch.zeros(n, k)]
    zs = logits(n, k, 4)
    assert_matches(camkd(y, tau=tau), lambda s, t: ref_camkd(s, t, y, tau), zs, ts, tau,
                   f'CAMKD lead {lead}')
    w = camkd_weights(ts, y)
    assert (w[1] < 1e-6).all() and (w[0] >= w[2]).all()
    assert torch.allclose(w[0], torch.full((n,), 0.5)) and torch.allclose(w[2], w[0])


@pytest.mark.parametrize('count', [2, 3, 5])
def test_camkd_weights_sum_to_one_per_sample_and_favour_lower_cross_entropy(count):
    n, k = 64, 10
    ts = teachers_for(count, n, k, count, scale=4.0)
    y = labels_for(n, k, count)
    w = camkd_weights(ts, y)
    assert w.shape == (count, n) and w.dtype == torch.float32 and not w.requires_grad
    assert torch.allclose(w.sum(0), torch.ones(n), rtol=0, atol=1e-6)
    assert (w >= 0).all()
    ce = torch.stack([torch.nn.functional.cross_entropy(t, y, reduction='none') for t in ts])
    for i in range(count):
        for j in range(count):
            lower = ce[i] < ce[j] - 1e-4
            assert (w[i][lower] > w[j][lower]).all()
    expected = torch.tensor(ref_camkd_weights([t.double() for t in ts], y), dtype=torch.float64)
    assert_close(w, expected, 'CAMKD weights', atol=1e-7)
    # Per sample: the weights of two samples differ where their teachers' CEs rank apart.
    assert (w.amax(1) - w.amin(1) > 0.1).all()


def test_camkd_of_one_or_identical_teachers_is_soft_distill():
    n, k, tau = 32, 100, 4.0
    zs, zt = logits(n, k, 7), logits(n, k, 8)
    y = labels_for(n, k, 7)
    expected, expected_g = with_grad(
        lambda s, t: SoftDistillLoss(tau=tau, reduction='batchmean')(s, t[0]), zs, [zt])
    assert torch.equal(camkd_weights([zt], y), torch.ones(1, n))
    loss = CAMKDLoss(tau=tau)
    for pack, teachers in ((lambda t: t[0], [zt]), (list, [zt]), (list, [zt, zt]),
                           (tuple, [zt, zt, zt])):
        value, g = with_grad(lambda s, t: loss(s, pack(t), y), zs, teachers)
        assert value.item() == pytest.approx(expected.item(), rel=RTOL), len(teachers)
        assert torch.allclose(g, expected_g, rtol=RTOL, atol=RTOL * expected_g.abs().max())


def test_camkd_under_bf16_autocast_is_float32_on_the_rounded_inputs():
    n, k, tau = 16, 100, 4.0
    zs = logits(n, k, 2).bfloat16()
    ts = [t.bfloat16() for t in teachers_for(3, n, k, 2)]
    y = labels_for(n, k, 2)
    loss = CAMKDLoss(tau=tau)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        zs_leaf = zs.clone().requires_grad_()
        value = loss(zs_leaf, ts, y)
    (g,) = torch.autograd.grad(value, zs_leaf)
    assert value.dtype == torch.float32 and g.dtype == torch.bfloat16
    value32, g32 = with_grad(lambda s, t: loss(s, t, y), zs.float(), [t.float() for t in ts])
    assert torch.equal(value, value32.detach()) and torch.equal(g, g32.bfloat16())
    assert_matches(lambda s, t: loss(s, t, y), lambda s, t: ref_camkd(s, t, y, tau),
                   zs.float(), [t.float() for t in ts], tau, 'CAMKD bf16-rounded inputs')


# ----- both: detached teachers, registry, bindings ------------------------------------------
@pytest.mark.parametrize('which', ['ensemble_probabilities', 'ensemble_logits', 'camkd'])
def test_no_gradient_reaches_the_teachers(which):
    """The teachers' logits (and CA-MKD's weights, computed from them) carry no gradient,
    even when a teacher's logits require one."""
    n, k = 8, 10
    zs = logits(n, k, 0).requires_grad_()
    ts = [t.requires_grad_() for t in teachers_for(3, n, k, 0)]
    y = labels_for(n, k, 0)
    if which == 'camkd':
        value = CAMKDLoss(tau=2.0)(zs, ts, y)
        assert not camkd_weights(ts, y).requires_grad
    else:
        value = EnsembleKDLoss(tau=2.0, average=which.split('_')[1])(zs, ts)
    grads = torch.autograd.grad(value, [zs, *ts], allow_unused=True)
    assert grads[0] is not None and torch.isfinite(grads[0]).all()
    assert all(g is None for g in grads[1:]), 'a gradient reached the teachers'


def test_registered_and_bound_to_a_list_of_teachers():
    loss = MODELS.build(dict(type='EnsembleKDLoss', tau=4.0))
    assert type(loss) is EnsembleKDLoss and loss.tau == 4.0
    assert (loss.reduction, loss.average, loss.weights, loss.logit_std) == (
        'batchmean', 'probabilities', None, False)
    teachers = ['teachers.a.logits', 'teachers.b.logits']
    bound = bind_arguments('ens', loss, dict(teacher_logits=teachers))
    assert bound['student_logits'].text == 'student.logits'
    assert [s.text for s in bound['teacher_logits']] == teachers
    ca = MODELS.build(dict(type='CAMKDLoss', tau=4.0))
    assert type(ca) is CAMKDLoss and (ca.tau, ca.reduction) == (4.0, 'batchmean')
    bound = bind_arguments('camkd', ca, dict(teacher_logits=teachers))
    assert bound['labels'].text == 'labels'
    assert [s.text for s in bound['teacher_logits']] == teachers


# ----- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize('cls', [EnsembleKDLoss, CAMKDLoss])
def test_bad_constructor_arguments_are_refused(cls):
    name = cls.__name__
    for tau in (0, -1.0, float('nan'), float('inf'), 'a', True, None):
        with pytest.raises(ValueError, match=f'{name}: tau must be'):
            cls(tau=tau)
    for reduction in ('mean', 'sum', None):
        with pytest.raises(ValueError, match=f"{name}: reduction must be one of .*'deit'"):
            cls(reduction=reduction)


def test_bad_ensemble_options_are_refused():
    with pytest.raises(ValueError, match="average must be one of .*'probabilities'.* got 'mean'"):
        EnsembleKDLoss(average='mean')
    with pytest.raises(ValueError, match='logit_std must be True or False'):
        EnsembleKDLoss(logit_std=1)
    with pytest.raises(ValueError, match=r'weights\[1\] must be a finite number >= 0, got -1'):
        EnsembleKDLoss(weights=[1.0, -1])
    with pytest.raises(ValueError, match=r'weights\[0\] must be .* got nan'):
        EnsembleKDLoss(weights=[float('nan'), 1.0])
    with pytest.raises(ValueError, match='are all 0'):
        EnsembleKDLoss(weights=[0, 0.0])
    for bad in ([], 1.0, 'ab', torch.ones(2)):
        with pytest.raises(ValueError, match='weights must be None'):
            EnsembleKDLoss(weights=bad)


def test_weights_must_match_the_number_of_teachers():
    zs, ts = logits(4, 10, 0), teachers_for(2, 4, 10, 0)
    with pytest.raises(ValueError, match='3 weights for 2 teachers'):
        EnsembleKDLoss(weights=[1, 1, 1])(zs, ts)
    with pytest.raises(ValueError, match='2 weights for 1 teachers'):
        EnsembleKDLoss(weights=[1, 1])(zs, ts[0])


@pytest.mark.parametrize('which', ['ensemble', 'camkd'])
def test_bad_teacher_logits_are_refused(which):
    zs = logits(4, 10, 0)
    y = labels_for(4, 10, 0)
    name = 'EnsembleKDLoss' if which == 'ensemble' else 'CAMKDLoss'

    def call(student, teachers):
        if which == 'ensemble':
            return EnsembleKDLoss()(student, teachers)
        return CAMKDLoss()(student, teachers, y)

    with pytest.raises(ValueError, match=(rf'{name}: teacher 1 logits \(4, 5\) differ from the '
                                          r'student logits \(4, 10\)')):
        call(zs, [logits(4, 10, 1), logits(4, 5, 2)])
    with pytest.raises(ValueError, match=r'teacher 0 logits \(4, 5\) differ'):
        call(zs, [logits(4, 5, 1), logits(4, 5, 2)])
    with pytest.raises(ValueError, match=r'teacher 2 logits \(3, 10\) differ'):
        call(zs, [logits(4, 10, 1), logits(4, 10, 2), logits(3, 10, 3)])
    with pytest.raises(ValueError, match=r'teacher 0 logits \(40,\) differ'):
        call(zs, logits(4, 10, 1).flatten())
    for bad in ([], None, [logits(4, 10, 1), None], 'teachers.a.logits'):
        with pytest.raises(ValueError, match='teacher_logits must be a tensor'):
            call(zs, bad)
    with pytest.raises(ValueError, match=r'student logits \(40,\) must be \(batch, classes\)'):
        call(zs.flatten(), [zs.flatten()])
    with pytest.raises(ValueError, match='at least 2 are needed'):
        call(zs[:, :1], [zs[:, :1]])


def test_bad_labels_are_refused_by_camkd():
    zs, ts = logits(4, 10, 0), teachers_for(2, 4, 10, 0)
    loss = CAMKDLoss()
    with pytest.raises(ValueError, match=r'CAMKDLoss: label 10 is out of range; labels must be '
                                         r'in \[0, 9\]'):
        loss(zs, ts, torch.tensor([0, 1, 10, 2]))
    with pytest.raises(ValueError, match='label -1 is out of range'):
        loss(zs, ts, torch.tensor([0, -1, 1, 2]))
    with pytest.raises(ValueError, match=r'labels \(3,\) must be class indices of shape \(4,\)'):
        loss(zs, ts, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match='labels must be integer class indices'):
        loss(zs, ts, torch.tensor([0.0, 1.0, 2.0, 3.0]))
