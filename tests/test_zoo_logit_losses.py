"""The logit losses of the zoo against float64 evaluations written from their papers'
equations: DKD (Zhao et al., CVPR 2022), DIST (Huang et al., NeurIPS 2022) and logit
standardisation (Sun et al., CVPR 2024) in SoftDistillLoss, DKDLoss and DISTLoss.

The references below are written independently of kdzoo's code, one sample (DKD, KD) or one
vector (DIST's Pearson correlations) at a time, in float64 with autograd for the gradients:
log-probabilities come from a hand-written log-sum-exp, DKD's non-target mass is the sum of
the non-target probabilities and its non-target distribution is ``p_k / p_rest`` (paper's
eqs. 1-2). kdzoo's losses compute in float32 and must agree to 1e-5 relative, values and
gradients, from well-separated to near-constant logits and logits of +-1e4.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from kdzoo.losses import DISTLoss, DKDLoss, SoftDistillLoss
from kdzoo.losses.logit_distill import LOGIT_STD_EPS
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


def safe_sqrt(s):
    """sqrt of a non-negative scalar, with a zero gradient at 0 (a constant vector)."""
    return s.sqrt() if s > 0 else s * 0


def ref_standardize(z):
    """Z-score of one row: (z - mean) / (population std + 1e-7) (Sun et al., Algorithm 1)."""
    c = z - z.mean()
    return c / (safe_sqrt((c * c).mean()) + LOGIT_STD_EPS)


def kl(log_p, log_q):
    """KL(p || q) = sum p (log p - log q) of two log-distributions."""
    return (torch.exp(log_p) * (log_p - log_q)).sum()


def ref_dkd(zs, zt, labels, alpha, beta, tau, logit_std=False):
    """Zhao et al. 2022: tau^2 (alpha TCKD + beta NCKD), averaged over the batch.

    b = [p_y, p_rest] with p_rest = sum_{k != y} p_k (eq. 1); p_hat_k = p_k / p_rest over
    the non-target classes (eq. 2); TCKD = KL(b_t || b_s), NCKD = KL(p_hat_t || p_hat_s).
    """
    total = 0
    for s, t, y in zip(zs, zt, labels.tolist()):
        if logit_std:
            s, t = ref_standardize(s), ref_standardize(t)
        log_ps, log_pt = log_softmax(s / tau), log_softmax(t / tau)
        rest = torch.arange(len(s)) != y
        log_rest_s, log_rest_t = lse(log_ps[rest]), lse(log_pt[rest])
        tckd = kl(torch.stack([log_pt[y], log_rest_t]), torch.stack([log_ps[y], log_rest_s]))
        nckd = kl(log_pt[rest] - log_rest_t, log_ps[rest] - log_rest_s)
        total = total + (alpha * tckd + beta * nckd) * tau ** 2
    return total / len(zs)


def textbook_dkd(zs, zt, labels, alpha, beta, tau):
    """DKD with plain probabilities (1 - p_y, p_k / (1 - p_y)), float64, moderate logits."""
    total = 0
    for s, t, y in zip(zs, zt, labels.tolist()):
        ps, pt = torch.softmax(s / tau, 0), torch.softmax(t / tau, 0)
        bs, bt = torch.stack([ps[y], 1 - ps[y]]), torch.stack([pt[y], 1 - pt[y]])
        tckd = (bt * torch.log(bt / bs)).sum()
        rest = torch.arange(len(s)) != y
        qs, qt = ps[rest] / (1 - ps[y]), pt[rest] / (1 - pt[y])
        nckd = (qt * torch.log(qt / qs)).sum()
        total = total + (alpha * tckd + beta * nckd) * tau ** 2
    return total / len(zs)


def pearson(u, v, eps):
    """Pearson's correlation with eps in the denominator (0 for a constant vector)."""
    uc, vc = u - u.mean(), v - v.mean()
    return (uc * vc).sum() / (safe_sqrt((uc * uc).sum()) * safe_sqrt((vc * vc).sum()) + eps)


def ref_dist(zs, zt, beta, gamma, tau, logit_std=False, eps=1e-8):
    """Huang et al. 2022: tau^2 (beta (1 - mean_i rho(Y_s[i], Y_t[i])) +
    gamma (1 - mean_k rho(Y_s[:, k], Y_t[:, k]))), Y = softmax(Z / tau)."""
    def probs(z):
        rows = [ref_standardize(r) if logit_std else r for r in z]
        return torch.stack([torch.exp(log_softmax(r / tau)) for r in rows])
    ys, yt = probs(zs), probs(zt)
    n, k = ys.shape
    inter = 1 - sum(pearson(ys[i], yt[i], eps) for i in range(n)) / n
    intra = 1 - sum(pearson(ys[:, c], yt[:, c], eps) for c in range(k)) / k
    return tau ** 2 * (beta * inter + gamma * intra)


def ref_soft(zs, zt, tau, reduction, logit_std):
    """Hinton et al. 2015: tau^2 KL(p_t || p_s), summed, over N*K ('deit') or N."""
    total = 0
    for s, t in zip(zs.reshape(-1, zs.shape[-1]), zt.reshape(-1, zt.shape[-1])):
        if logit_std:
            s, t = ref_standardize(s), ref_standardize(t)
        total = total + kl(log_softmax(t / tau), log_softmax(s / tau))
    return total * tau ** 2 / (zs.numel() if reduction == 'deit' else zs.shape[0])


# ----- comparison ---------------------------------------------------------------------------
def with_grads(fn, zs, zt, *args):
    """fn's value and its gradients with respect to both logits (leaf copies)."""
    zs, zt = zs.detach().clone().requires_grad_(), zt.detach().clone().requires_grad_()
    value = fn(zs, zt, *args)
    gs, gt = torch.autograd.grad(value, (zs, zt))
    return value.detach(), gs, gt


def assert_close(got, expected, what, atol=1e-7):
    """|got - expected| <= RTOL * |expected| + atol, everything finite."""
    got, expected = got.double(), expected.double()
    assert torch.isfinite(got).all(), f'{what}: not finite: {got}'
    err = (got - expected).abs()
    bound = RTOL * expected.abs() + atol
    worst = (err - bound).argmax()
    assert (err <= bound).all(), (f'{what}: {got.flatten()[worst].item()!r} vs '
                                  f'{expected.flatten()[worst].item()!r} (error '
                                  f'{err.flatten()[worst].item():.3g})')


def term_scale(zs, zt, tau, weight, count, logit_std=False, logs=True):
    """The size of the terms a loss is summed from, ``tau^2 * weight`` times the largest
    |log-probability| (log-ratios make up the KL terms and the teacher's gradient), and of
    the terms of its gradient entries: that, divided by ``tau * count`` and, with logit
    standardisation, by (the smallest row std + eps) (its chain factor). Float32 resolves
    a sum to about 1e-7 of its terms, whatever the size of the sum: (value, gradient).
    ``logs=False`` for a loss without log-probabilities (DIST)."""
    rows = torch.cat([zs, zt]).double().reshape(-1, zs.shape[-1])
    factor = 1.0
    if logit_std:
        std = (rows - rows.mean(1, keepdim=True)).square().mean(1).sqrt()
        factor = 1 / (std.min().item() + LOGIT_STD_EPS)
        rows = torch.stack([ref_standardize(r) for r in rows])
    log_p = torch.stack([log_softmax(r / tau) for r in rows])
    value = tau ** 2 * weight * (max(1.0, log_p.abs().max().item()) if logs else 1.0)
    return value, value / (tau * count) * max(1.0, factor)


def assert_matches(loss_fn, ref_fn, zs, zt, scale, what, grads=True):
    """The value and each gradient entry to 1e-5 relative. The absolute floors, for entries
    near 0: 1e-7 of the terms they are summed from (``scale``, see :func:`term_scale`) and,
    for a gradient, 1e-5 of its largest entry."""
    value, gs, gt = with_grads(loss_fn, zs, zt)
    ref, rgs, rgt = with_grads(ref_fn, zs.double(), zt.double())
    assert value.dtype == torch.float32
    assert_close(value, ref, f'{what} value', atol=1e-7 * scale[0])
    for name, g, r in (('student', gs, rgs), ('teacher', gt, rgt)):
        assert torch.isfinite(g).all(), f'{what}: gradient to the {name} logits not finite'
        if grads:
            assert_close(g, r, f'{what} gradient to the {name} logits',
                         atol=RTOL * r.abs().max().item() + 1e-7 * scale[1])


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
    """z with each row's label logit set to lead above that row's largest other logit."""
    z = z.clone()
    rows = torch.arange(len(z))
    z[rows, labels] = -math.inf
    z[rows, labels] = z.max(dim=1).values + lead
    return z


SHAPES = [(1, 2), (4, 2), (3, 3), (8, 10), (64, 10), (16, 100), (2, 1000), (64, 1000)]


# ----- DKD ----------------------------------------------------------------------------------
def dkd(labels, alpha, beta, tau, logit_std=False):
    """DKDLoss as a function of the two logits, for ``labels``."""
    loss = DKDLoss(alpha=alpha, beta=beta, tau=tau, logit_std=logit_std)
    return lambda zs, zt: loss(zs, zt, labels)


def test_dkd_reference_is_the_textbook_formula_where_float64_can_evaluate_it():
    zs, zt = logits(6, 10, 0).double(), logits(6, 10, 1).double()
    y = labels_for(6, 10, 0)
    assert ref_dkd(zs, zt, y, 1.0, 8.0, 4.0).item() == pytest.approx(
        textbook_dkd(zs, zt, y, 1.0, 8.0, 4.0).item(), rel=1e-12)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('seed,scale,tau,alpha,beta,logit_std', [
    (0, 3.0, 4.0, 1.0, 8.0, False), (1, 1.0, 1.0, 0.5, 2.0, False),
    (2, 10.0, 2.0, 1.0, 0.5, False), (3, 3.0, 2.0, 1.0, 8.0, True)])
def test_dkd_matches_its_definition(shape, seed, scale, tau, alpha, beta, logit_std):
    n, k = shape
    zs, zt = logits(n, k, seed, scale=scale), logits(n, k, seed + 7, scale=scale)
    y = labels_for(n, k, seed)
    assert_matches(dkd(y, alpha, beta, tau, logit_std),
                   lambda s, t: ref_dkd(s, t, y, alpha, beta, tau, logit_std), zs, zt,
                   term_scale(zs, zt, tau, alpha + beta, n, logit_std), f'DKD {shape}')


@pytest.mark.parametrize('tau', [1.0, 4.0])
@pytest.mark.parametrize('lead', [20.0, 80.0, 100.0])
@pytest.mark.parametrize('who', ['student', 'teacher', 'both'])
def test_dkd_is_exact_for_any_target_lead(tau, lead, who):
    n, k = 8, 10
    y = labels_for(n, k, 3)
    zs, zt = logits(n, k, 3), logits(n, k, 4)
    if who in ('student', 'both'):
        zs = with_lead(zs, y, lead)
    if who in ('teacher', 'both'):
        zt = with_lead(zt, y, lead)
    assert_matches(dkd(y, 1.0, 8.0, tau), lambda s, t: ref_dkd(s, t, y, 1.0, 8.0, tau),
                   zs, zt, term_scale(zs, zt, tau, 9.0, n), f'DKD lead {lead} ({who}) tau {tau}')


@pytest.mark.parametrize('kind', ['extreme', 'low', 'offset', 'near_constant'])
@pytest.mark.parametrize('tau,logit_std', [(1.0, False), (3.0, False), (2.0, True)])
def test_dkd_is_exact_for_extreme_logits(kind, tau, logit_std):
    n, k = 16, 10
    zs, zt = logits(n, k, 5, kind), logits(n, k, 6, kind)
    y = labels_for(n, k, 5)
    assert_matches(dkd(y, 1.0, 8.0, tau, logit_std),
                   lambda s, t: ref_dkd(s, t, y, 1.0, 8.0, tau, logit_std), zs, zt,
                   term_scale(zs, zt, tau, 9.0, n, logit_std), f'DKD {kind} tau {tau}')


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_dkd_removes_the_target_exactly_when_it_leads_by_2e4(tau):
    """NCKD over the non-target classes alone: a target 2e4 above the others must not
    leak into it (a -1e4 fill of the target, before or after the shift, would)."""
    n, k = 8, 10
    y = labels_for(n, k, 7)
    g = torch.Generator().manual_seed(7)
    zs = -1e4 + 1e3 * torch.rand(n, k, generator=g)
    zt = -1e4 + 3 * torch.randn(n, k, generator=g)
    zs[torch.arange(n), y] = 1e4
    assert_matches(dkd(y, 1.0, 8.0, tau), lambda s, t: ref_dkd(s, t, y, 1.0, 8.0, tau),
                   zs, zt, term_scale(zs, zt, tau, 9.0, n), f'DKD lead 2e4 tau {tau}')


def example_dkd(zs, zt, labels, alpha=1.0, beta=8.0, t=4.0):
    """The formulation of configs/examples/dkd_loss.py: 1 - p_y in float32, log clamped
    at 1e-12, the target masked out of NCKD by a -1e4 fill."""
    target = F.one_hot(labels, zs.shape[-1]).bool()
    p_s, p_t = F.softmax(zs / t, dim=-1), F.softmax(zt / t, dim=-1)
    b_s = torch.stack([p_s[target], 1 - p_s[target]], dim=-1).clamp_min(1e-12)
    b_t = torch.stack([p_t[target], 1 - p_t[target]], dim=-1).clamp_min(1e-12)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(-1).mean()
    log_q_s = F.log_softmax(zs.masked_fill(target, -1e4) / t, dim=-1)
    log_q_t = F.log_softmax(zt.masked_fill(target, -1e4) / t, dim=-1)
    nckd = (log_q_t.exp() * (log_q_t - log_q_s)).sum(-1).mean()
    return (alpha * tckd + beta * nckd) * t * t


@pytest.mark.parametrize('tau,lead', [(1.0, 20.0), (1.0, 100.0), (4.0, 80.0)])
def test_the_examples_one_minus_p_form_is_wrong_where_the_exact_form_is_not(tau, lead):
    n, k = 8, 10
    y = labels_for(n, k, 0)
    zs, zt = with_lead(logits(n, k, 0, scale=1.0), y, lead), logits(n, k, 1, scale=1.0)
    ref, ref_gs, _ = with_grads(lambda s, t: ref_dkd(s, t, y, 1.0, 8.0, tau),
                                zs.double(), zt.double())
    old, old_gs, _ = with_grads(lambda s, t: example_dkd(s, t, y, t=tau), zs, zt)
    assert abs(old.item() - ref.item()) / ref.item() > 0.05
    # The clamp cuts the gradient of log(1 - p_y) off: entries the exact form has are 0.
    assert ((old_gs == 0) & (ref_gs.abs() > 1e-3)).any()
    new = DKDLoss(tau=tau)(zs, zt, y)
    assert abs(new.item() - ref.item()) / ref.item() < RTOL


def test_the_examples_fill_loses_against_logits_below_minus_1e4():
    n, k = 8, 10
    zs, zt = logits(n, k, 0, 'low'), logits(n, k, 1, 'low')
    y = labels_for(n, k, 0)
    ref = ref_dkd(zs.double(), zt.double(), y, 0.0, 1.0, 1.0).item()  # NCKD alone
    old = example_dkd(zs, zt, y, alpha=0.0, beta=1.0, t=1.0).item()
    new = DKDLoss(alpha=0.0, beta=1.0, tau=1.0)(zs, zt, y).item()
    assert ref > 1.0 and abs(old - ref) / ref > 0.5
    assert abs(new - ref) / ref < RTOL


def test_dkd_decomposes_classical_kd():
    """Zhao et al. eq. (7): KD = TCKD + (1 - p_y^T) NCKD, per sample."""
    k, tau = 10, 2.0
    for seed in range(3):
        zs, zt = logits(1, k, seed), logits(1, k, seed + 10)
        y = labels_for(1, k, seed)
        kd = SoftDistillLoss(tau=tau, reduction='batchmean')(zs, zt).item()
        tckd = DKDLoss(alpha=1.0, beta=0.0, tau=tau)(zs, zt, y).item()
        nckd = DKDLoss(alpha=0.0, beta=1.0, tau=tau)(zs, zt, y).item()
        rest_t = 1 - torch.softmax(zt.double() / tau, -1)[0, y].item()
        assert kd == pytest.approx(tckd + rest_t * nckd, rel=1e-5)


@pytest.mark.parametrize('logit_std', [False, True])
def test_dkd_under_bf16_autocast_is_float32_on_the_rounded_inputs(logit_std):
    n, k, tau = 16, 100, 4.0
    y = labels_for(n, k, 2)
    zs = with_lead(logits(n, k, 2), y, 30.0).bfloat16()
    zt = logits(n, k, 3).bfloat16()
    loss = DKDLoss(tau=tau, logit_std=logit_std)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value, gs, gt = with_grads(lambda s, t: loss(s, t, y), zs, zt)
    assert value.dtype == torch.float32 and gs.dtype == torch.bfloat16
    value32, gs32, gt32 = with_grads(lambda s, t: loss(s, t, y), zs.float(), zt.float())
    assert torch.equal(value, value32)
    assert torch.equal(gs, gs32.bfloat16()) and torch.equal(gt, gt32.bfloat16())
    assert_matches(lambda s, t: loss(s, t, y),
                   lambda s, t: ref_dkd(s, t, y, 1.0, 8.0, tau, logit_std), zs.float(),
                   zt.float(), term_scale(zs.float(), zt.float(), tau, 9.0, n, logit_std),
                   'DKD bf16-rounded inputs')


def test_dkd_is_the_registered_loss_and_binds_the_labels_by_name():
    loss = MODELS.build(dict(type='DKDLoss'))
    assert type(loss) is DKDLoss and (loss.alpha, loss.beta, loss.tau) == (1.0, 8.0, 4.0)
    bound = bind_arguments('dkd', loss, {})
    assert {a: s.text for a, s in bound.items()} == {
        'student_logits': 'student.logits', 'teacher_logits': 'teacher.logits',
        'labels': 'labels'}
    assert type(MODELS.build(dict(type='DISTLoss'))) is DISTLoss


@pytest.mark.parametrize('kwargs,message', [
    (dict(tau=0.0), r'DKDLoss: tau must be a finite number > 0, got 0\.0'),
    (dict(tau=-1.0), r'tau must be a finite number > 0, got -1\.0'),
    (dict(tau=float('nan')), r'tau must be a finite number > 0, got nan'),
    (dict(alpha=-0.5), r'DKDLoss: alpha must be a finite number >= 0, got -0\.5'),
    (dict(beta=-1), r'DKDLoss: beta must be a finite number >= 0, got -1'),
    (dict(beta='8'), r"beta must be a finite number >= 0, got '8'"),
    (dict(logit_std='yes'), r"logit_std must be True or False, got 'yes'"),
])
def test_dkd_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DKDLoss(**kwargs)


@pytest.mark.parametrize('zs,zt,y,message', [
    (torch.zeros(4, 10), torch.zeros(4, 9), torch.zeros(4, dtype=torch.long),
     r'student logits \(4, 10\) and teacher logits \(4, 9\) must both be \(batch, classes\)'),
    (torch.zeros(10), torch.zeros(10), torch.zeros(1, dtype=torch.long),
     r'student logits \(10,\)'),
    (torch.zeros(4, 1), torch.zeros(4, 1), torch.zeros(4, dtype=torch.long),
     r'the logits have 1 class; at least 2 are needed'),
    (torch.zeros(4, 10), torch.zeros(4, 10), torch.tensor([0, 1, 10, 2]),
     r'label 10 is out of range; labels must be in \[0, 9\] for 10 classes'),
    (torch.zeros(4, 10), torch.zeros(4, 10), torch.tensor([0, -1, 1, 2]),
     r'label -1 is out of range'),
    (torch.zeros(4, 10), torch.zeros(4, 10), torch.zeros(3, dtype=torch.long),
     r'labels \(3,\) must be class indices of shape \(4,\)'),
    (torch.zeros(4, 10), torch.zeros(4, 10), torch.zeros(4),
     r'labels must be integer class indices, got torch.float32'),
])
def test_dkd_rejects_bad_inputs(zs, zt, y, message):
    with pytest.raises(ValueError, match=message):
        DKDLoss()(zs, zt, y)


# ----- DIST ---------------------------------------------------------------------------------
def dist(beta, gamma, tau, logit_std=False):
    return DISTLoss(beta=beta, gamma=gamma, tau=tau, logit_std=logit_std)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('seed,scale,tau,beta,gamma,logit_std', [
    (0, 3.0, 1.0, 1.0, 1.0, False), (1, 1.0, 4.0, 2.0, 0.5, False),
    (2, 3.0, 4.0, 1.0, 1.0, True)])
def test_dist_matches_its_definition(shape, seed, scale, tau, beta, gamma, logit_std):
    n, k = shape
    if n * k > 20000 and seed:
        pytest.skip('the float64 reference loops over 1000 classes: one seed is enough')
    zs, zt = logits(n, k, seed, scale=scale), logits(n, k, seed + 7, scale=scale)
    # With two classes every centred row is +-(p - 1/2) (1, -1): rho is saturated at +-1
    # and its gradient is an eps-sized remainder of terms 1e8 times larger, below float32's
    # resolution; logit standardisation then also maps every row to +-(1 - eps / std) (1, -1),
    # leaving the intra term to eps-sized differences. The values are compared, and the
    # gradients where they are resolved.
    if k == 2 and logit_std:
        value, gs, gt = with_grads(dist(beta, gamma, tau, logit_std), zs, zt)
        assert torch.isfinite(value) and torch.isfinite(gs).all() and torch.isfinite(gt).all()
        return
    assert_matches(dist(beta, gamma, tau, logit_std),
                   lambda s, t: ref_dist(s, t, beta, gamma, tau, logit_std), zs, zt,
                   term_scale(zs, zt, tau, beta + gamma, n, logit_std, logs=False), f'DIST {shape}',
                   grads=k > 2)


@pytest.mark.parametrize('kind', ['extreme', 'low', 'offset', 'near_constant'])
@pytest.mark.parametrize('tau,logit_std', [(1.0, False), (3.0, False), (2.0, True)])
def test_dist_is_exact_for_extreme_and_near_constant_logits(kind, tau, logit_std):
    n, k = 16, 10
    zs, zt = logits(n, k, 5, kind), logits(n, k, 6, kind)
    assert_matches(dist(1.0, 1.0, tau, logit_std),
                   lambda s, t: ref_dist(s, t, 1.0, 1.0, tau, logit_std), zs, zt,
                   term_scale(zs, zt, tau, 2.0, n, logit_std, logs=False), f'DIST {kind} tau {tau}')


@pytest.mark.parametrize('noise', [1e-2, 1e-4, 1e-6])
def test_dist_near_uniform_rows_across_the_batch(noise):
    """Rows near uniform, so columns are near-constant too: both centrings are tested at
    the digits that cancel."""
    g = torch.Generator().manual_seed(0)
    zs = 5 + noise * torch.randn(32, 20, generator=g)
    zt = -3 + noise * torch.randn(32, 20, generator=g)
    assert_matches(dist(1.0, 1.0, 1.0), lambda s, t: ref_dist(s, t, 1.0, 1.0, 1.0), zs, zt,
                   term_scale(zs, zt, 1.0, 2.0, 32, logs=False), f'DIST noise {noise}')


def test_dist_constant_vectors_have_zero_correlation_and_finite_gradients():
    g = torch.Generator().manual_seed(0)
    zt = torch.randn(4, 10, generator=g)
    zs = torch.randn(4, 10, generator=g)
    zs[1] = 2.5  # a uniform student row: its inter rho is 0
    value, gs, gt = with_grads(dist(1.0, 0.0, 1.0), zs, zt)
    ref, rgs, rgt = with_grads(lambda s, t: ref_dist(s, t, 1.0, 0.0, 1.0),
                               zs.double(), zt.double())
    assert torch.isfinite(gs).all() and torch.isfinite(gt).all()
    assert_close(value, ref, 'DIST with a uniform row')
    assert_close(gs, rgs, 'its gradient', atol=RTOL * rgs.abs().max().item())
    # A batch of one: the intra term is the constant gamma * tau^2, without gradient.
    one_s, one_t = zs[:1], zt[:1]
    only_intra, gs, _ = with_grads(dist(0.0, 0.5, 2.0), one_s, one_t)
    assert only_intra.item() == 0.5 * 4.0 and not gs.any()


def test_dist_is_symmetric_and_near_zero_for_equal_logits():
    zs, zt = logits(8, 10, 0), logits(8, 10, 1)
    loss = dist(1.0, 1.0, 4.0)
    assert loss(zs, zt).item() == loss(zt, zs).item()
    assert abs(loss(zs, zs).item()) < 1e-5


def test_logit_std_changes_dist_and_makes_it_scale_free():
    """Pearson ignores each probability vector's scale, not the logits' scale: logit
    standardisation is not a no-op for DIST; with it, DIST ignores each row's scale."""
    zs, zt = logits(8, 10, 0), logits(8, 10, 1)
    scales = torch.rand(8, 1, generator=torch.Generator().manual_seed(2)) * 4 + 0.5
    plain, std = dist(1.0, 1.0, 1.0), dist(1.0, 1.0, 1.0, logit_std=True)
    assert abs(plain(zs, zt).item() - std(zs, zt).item()) > 1e-2
    assert abs(plain(zs * scales, zt).item() - plain(zs, zt).item()) > 1e-2
    assert std(zs * scales + 7.0, zt).item() == pytest.approx(std(zs, zt).item(), rel=1e-5)


@pytest.mark.parametrize('logit_std', [False, True])
def test_dist_under_bf16_autocast_is_float32_on_the_rounded_inputs(logit_std):
    zs, zt = logits(32, 100, 2).bfloat16(), logits(32, 100, 3).bfloat16()
    loss = dist(1.0, 1.0, 4.0, logit_std)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value, gs, gt = with_grads(loss, zs, zt)
    assert value.dtype == torch.float32
    value32, gs32, gt32 = with_grads(loss, zs.float(), zt.float())
    assert torch.equal(value, value32)
    assert torch.equal(gs, gs32.bfloat16()) and torch.equal(gt, gt32.bfloat16())
    assert_matches(loss, lambda s, t: ref_dist(s, t, 1.0, 1.0, 4.0, logit_std), zs.float(),
                   zt.float(), term_scale(zs.float(), zt.float(), 4.0, 2.0, 32, logit_std,
                              logs=False),
                   'DIST bf16-rounded inputs')


@pytest.mark.parametrize('kwargs,message', [
    (dict(tau=0.0), r'DISTLoss: tau must be a finite number > 0, got 0\.0'),
    (dict(tau=-4), r'tau must be a finite number > 0, got -4'),
    (dict(beta=-1.0), r'DISTLoss: beta must be a finite number >= 0, got -1\.0'),
    (dict(gamma=-0.1), r'DISTLoss: gamma must be a finite number >= 0, got -0\.1'),
    (dict(gamma=float('inf')), r'gamma must be a finite number >= 0, got inf'),
    (dict(eps=0.0), r'DISTLoss: eps must be a finite number > 0, got 0\.0'),
    (dict(logit_std=1), r'logit_std must be True or False, got 1'),
])
def test_dist_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DISTLoss(**kwargs)


@pytest.mark.parametrize('zs,zt,message', [
    (torch.zeros(4, 10), torch.zeros(5, 10),
     r'DISTLoss: student logits \(4, 10\) and teacher logits \(5, 10\) must both be'),
    (torch.zeros(2, 4, 10), torch.zeros(2, 4, 10), r'must both be \(batch, classes\)'),
    (torch.zeros(4, 1), torch.zeros(4, 1), r'the logits have 1 class; at least 2'),
])
def test_dist_rejects_bad_inputs(zs, zt, message):
    with pytest.raises(ValueError, match=message):
        DISTLoss()(zs, zt)


# ----- logit standardisation in SoftDistillLoss ---------------------------------------------
@pytest.mark.parametrize('shape', [(1, 2), (4, 3), (8, 10), (64, 1000), (2, 5, 10)])
@pytest.mark.parametrize('tau,reduction', [(2.0, 'batchmean'), (3.0, 'deit'), (1.0, 'deit')])
def test_soft_logit_std_matches_its_definition(shape, tau, reduction):
    g = torch.Generator().manual_seed(len(shape) + shape[-1])
    zs, zt = torch.randn(*shape, generator=g) * 5 + 2, torch.randn(*shape, generator=g) * 0.5
    loss = SoftDistillLoss(tau=tau, reduction=reduction, logit_std=True)
    count = zs.numel() if reduction == 'deit' else zs.shape[0]
    assert_matches(loss, lambda s, t: ref_soft(s, t, tau, reduction, True), zs, zt,
                   term_scale(zs, zt, tau, 1.0, count, True), f'standardised KD {shape}')


@pytest.mark.parametrize('kind', ['extreme', 'offset', 'near_constant'])
def test_soft_logit_std_is_exact_for_extreme_logits(kind):
    zs, zt = logits(16, 10, 0, kind), logits(16, 10, 1, kind)
    loss = SoftDistillLoss(tau=2.0, reduction='batchmean', logit_std=True)
    assert_matches(loss, lambda s, t: ref_soft(s, t, 2.0, 'batchmean', True), zs, zt,
                   term_scale(zs, zt, 2.0, 1.0, 16, True), f'standardised KD {kind}')


def test_soft_distill_without_logit_std_is_unchanged():
    zs, zt = logits(8, 10, 0), logits(8, 10, 1)
    assert SoftDistillLoss().logit_std is False
    expected = F.kl_div(F.log_softmax(zs / 4.0, dim=-1), F.log_softmax(zt / 4.0, dim=-1),
                        reduction='sum', log_target=True) * 16.0 / zs.numel()
    assert torch.equal(SoftDistillLoss(tau=4.0)(zs, zt), expected)
    assert_matches(SoftDistillLoss(tau=4.0, reduction='batchmean'),
                   lambda s, t: ref_soft(s, t, 4.0, 'batchmean', False), zs, zt,
                   term_scale(zs, zt, 4.0, 1.0, 8), 'KD')


@pytest.mark.parametrize('make', [
    lambda: SoftDistillLoss(tau=2.0, logit_std=True),
    lambda: DKDLoss(tau=2.0, logit_std=True),
    lambda: DISTLoss(tau=2.0, logit_std=True)])
def test_logit_std_ignores_each_samples_logit_scale_and_shift(make):
    """The point of Sun et al.: only the logits' relations count, not their range."""
    zs, zt = logits(8, 10, 0), logits(8, 10, 1)
    g = torch.Generator().manual_seed(3)
    scale, shift = torch.rand(8, 1, generator=g) * 5 + 0.2, torch.randn(8, 1, generator=g) * 9
    y = labels_for(8, 10, 0)
    loss = make()
    args = (y,) if isinstance(loss, DKDLoss) else ()
    assert loss(zs * scale + shift, zt, *args).item() == pytest.approx(
        loss(zs, zt, *args).item(), rel=1e-5)


def test_logit_std_keeps_constant_rows_finite():
    zs, zt = torch.full((3, 10), 4.0), logits(3, 10, 1)
    for loss, args in ((SoftDistillLoss(tau=2.0, logit_std=True), ()),
                       (DKDLoss(tau=2.0, logit_std=True), (labels_for(3, 10, 0),)),
                       (DISTLoss(tau=2.0, logit_std=True), ())):
        value, gs, gt = with_grads(lambda s, t: loss(s, t, *args), zs, zt)
        assert torch.isfinite(value) and torch.isfinite(gs).all() and torch.isfinite(gt).all()
    value, gs, _ = with_grads(SoftDistillLoss(tau=2.0, logit_std=True), zs, zt)
    ref, rgs, _ = with_grads(lambda s, t: ref_soft(s, t, 2.0, 'deit', True),
                             zs.double(), zt.double())
    assert_close(value, ref, 'KD of a constant row')
    assert_close(gs, rgs, 'its gradient', atol=RTOL * rgs.abs().max().item())


def test_soft_distill_rejects_bad_logit_std_and_shapes():
    with pytest.raises(ValueError, match=r"logit_std must be True or False, got 'on'"):
        SoftDistillLoss(logit_std='on')
    with pytest.raises(ValueError, match=r'student logits \(4, 10\) and teacher logits '
                                         r'\(4, 11\) must have the same shape'):
        SoftDistillLoss()(torch.zeros(4, 10), torch.zeros(4, 11))
