"""Logit losses, the base criterion and the Distiller's loss weighting, checked against
formulas computed here with plain tensor operations."""
import pytest
import torch
from mmpretrain.structures import DataSample

from conftest import tiny_deit, tiny_resnet
from kdzoo.losses import HardDistillLoss, LabelSmoothCrossEntropy, SoftDistillLoss
from kdzoo.registry import MODELS


def ref_log_softmax(z):
    """log softmax from exp/sum/log, in float64."""
    z = z.double()
    z = z - z.max(dim=-1, keepdim=True).values
    return z - torch.log(torch.exp(z).sum(dim=-1, keepdim=True))


def ref_kl_sum(student, teacher, tau):
    """sum over batch and classes of p_t * (log p_t - log p_s) at temperature tau."""
    log_pt = ref_log_softmax(teacher / tau)
    log_ps = ref_log_softmax(student / tau)
    return (torch.exp(log_pt) * (log_pt - log_ps)).sum()


def ref_cross_entropy(logits, target_dist):
    """mean over the batch of -sum_k t_k log softmax(z)_k."""
    return -(target_dist.double() * ref_log_softmax(logits)).sum(dim=-1).mean()


def one_hot(labels, k):
    out = torch.zeros(len(labels), k, dtype=torch.float64)
    out[torch.arange(len(labels)), labels] = 1.0
    return out


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(6, 7, generator=g) * 3
    teacher = torch.randn(6, 7, generator=g) * 3
    return student, teacher


# ---------------------------------------------------------------- SoftDistillLoss

@pytest.mark.parametrize('tau', [1.0, 3.0, 0.5])
def test_soft_distill_deit_reduction(logits, tau):
    student, teacher = logits
    got = SoftDistillLoss(tau=tau, reduction='deit')(student, teacher)
    want = ref_kl_sum(student, teacher, tau) * tau ** 2 / student.numel()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize('tau', [1.0, 3.0])
def test_soft_distill_batchmean_reduction(logits, tau):
    student, teacher = logits
    got = SoftDistillLoss(tau=tau, reduction='batchmean')(student, teacher)
    want = ref_kl_sum(student, teacher, tau) * tau ** 2 / student.shape[0]
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_soft_distill_reductions_differ_by_class_count(logits):
    student, teacher = logits
    deit = SoftDistillLoss(tau=2.0)(student, teacher)
    batchmean = SoftDistillLoss(tau=2.0, reduction='batchmean')(student, teacher)
    assert batchmean.item() == pytest.approx(deit.item() * student.shape[1], rel=1e-5)


def test_soft_distill_zero_for_equal_logits_and_gradient_flows(logits):
    student, _ = logits
    assert SoftDistillLoss(tau=2.0)(student, student).abs().item() < 1e-6
    s = student.clone().requires_grad_(True)
    SoftDistillLoss(tau=2.0)(s, logits[1]).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_soft_distill_built_from_registry(logits):
    loss = MODELS.build(dict(type='SoftDistillLoss', tau=3.0, reduction='batchmean'))
    assert isinstance(loss, SoftDistillLoss) and loss.tau == 3.0
    student, teacher = logits
    want = ref_kl_sum(student, teacher, 3.0) * 9.0 / student.shape[0]
    assert loss(student, teacher).item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize('tau', [0, 0.0, -1.5])
def test_soft_distill_rejects_non_positive_tau(tau):
    with pytest.raises(ValueError, match=f'tau.*{tau}'):
        SoftDistillLoss(tau=tau)


def test_soft_distill_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="'mean'"):
        SoftDistillLoss(reduction='mean')


# ---------------------------------------------------------------- HardDistillLoss

def test_hard_distill_is_cross_entropy_to_teacher_argmax(logits):
    student, teacher = logits
    got = HardDistillLoss()(student, teacher)
    want = ref_cross_entropy(student, one_hot(teacher.argmax(-1), student.shape[1]))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_hard_distill_only_depends_on_teacher_argmax(logits):
    student, teacher = logits
    # Rescaling the teacher's logits keeps its argmax and hence the loss.
    assert HardDistillLoss()(student, teacher).item() == pytest.approx(
        HardDistillLoss()(student, teacher * 10 + 3).item(), rel=1e-6)


# ---------------------------------------------------------- LabelSmoothCrossEntropy

@pytest.mark.parametrize('eps', [0.0, 0.1, 0.3])
def test_label_smooth_ce_hard_labels(logits, eps):
    student, _ = logits
    labels = torch.tensor([0, 3, 6, 1, 1, 5])
    k = student.shape[1]
    target = one_hot(labels, k) * (1 - eps) + eps / k
    got = LabelSmoothCrossEntropy(label_smoothing=eps)(student, labels)
    assert got.item() == pytest.approx(ref_cross_entropy(student, target).item(), rel=1e-5)


def test_label_smooth_ce_plain_equals_negative_log_likelihood(logits):
    student, _ = logits
    labels = torch.tensor([2, 2, 0, 4, 6, 3])
    got = LabelSmoothCrossEntropy()(student, labels)
    want = -ref_log_softmax(student)[torch.arange(6), labels].mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_label_smooth_ce_mixed_soft_targets(logits):
    """Mixed targets: smoothing after mixing equals mixing smoothed labels (timm mixup)."""
    student, _ = logits
    k, eps = student.shape[1], 0.1
    a = torch.tensor([0, 1, 2, 3, 4, 5])
    b = torch.tensor([6, 6, 0, 3, 2, 1])
    lam = 0.7
    mixed = lam * one_hot(a, k) + (1 - lam) * one_hot(b, k)
    got = LabelSmoothCrossEntropy(label_smoothing=eps)(student, mixed.float())
    smooth = lambda y: one_hot(y, k) * (1 - eps) + eps / k  # noqa: E731
    want = ref_cross_entropy(student, lam * smooth(a) + (1 - lam) * smooth(b))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize('eps', [1.0, -0.1, 1.5])
def test_label_smooth_ce_rejects_bad_smoothing(eps):
    with pytest.raises(ValueError, match=f'label_smoothing.*{eps}'):
        LabelSmoothCrossEntropy(label_smoothing=eps)


def test_hard_distill_target_is_not_smoothed_with_smoothing_criterion(logits):
    """With label smoothing in the base criterion, the Distiller's hard term still uses
    the teacher's plain one-hot label: it differs from a smoothed CE to the same label."""
    student, teacher = logits
    hard = HardDistillLoss()(student, teacher)
    smoothed = LabelSmoothCrossEntropy(0.1)(student, teacher.argmax(-1))
    assert abs(hard.item() - smoothed.item()) > 1e-3


# ------------------------------------------------------------------ Distiller weighting

def make_distiller(alpha=0.3, distill_loss=dict(type='HardDistillLoss'), distilled=True,
                   label_smoothing=0.1):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='Distiller', student=tiny_deit(distilled=distilled),
        teacher=dict(type='Teacher', random_init=True, model=tiny_resnet()),
        criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=label_smoothing),
        distill_loss=distill_loss, alpha=alpha))


def batch(n=4, num_classes=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 3, 32, 32, generator=g)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return inputs, samples, labels


def teacher_reference(model, inputs):
    with torch.no_grad():
        return model.teacher.model(inputs)


@pytest.mark.parametrize('alpha', [0.3, 0.5, 0.9])
def test_distiller_hard_weighting(alpha):
    model = make_distiller(alpha=alpha)
    inputs, samples, labels = batch()
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_cls', 'loss_distill'}
    cls, dist = model.student.forward_heads(inputs)
    t = teacher_reference(model, inputs)
    k = cls.shape[1]
    base = ref_cross_entropy(cls, one_hot(labels, k) * 0.9 + 0.1 / k)
    distill = ref_cross_entropy(dist, one_hot(t.argmax(-1), k))  # unsmoothed teacher label
    assert losses['loss_cls'].item() == pytest.approx((1 - alpha) * base.item(), rel=1e-4)
    assert losses['loss_distill'].item() == pytest.approx(alpha * distill.item(), rel=1e-4)
    # The distillation term is computed on the distillation head, not the class head.
    on_cls = ref_cross_entropy(cls, one_hot(t.argmax(-1), k))
    assert abs(on_cls.item() - distill.item()) > 1e-4


def test_distiller_soft_weighting():
    alpha, tau = 0.1, 3.0
    model = make_distiller(alpha=alpha, distill_loss=dict(type='SoftDistillLoss', tau=tau))
    inputs, samples, labels = batch(seed=2)
    losses = model.loss(inputs, samples)
    cls, dist = model.student.forward_heads(inputs)
    t = teacher_reference(model, inputs)
    k = cls.shape[1]
    base = ref_cross_entropy(cls, one_hot(labels, k) * 0.9 + 0.1 / k)
    distill = ref_kl_sum(dist, t, tau) * tau ** 2 / dist.numel()
    assert losses['loss_cls'].item() == pytest.approx((1 - alpha) * base.item(), rel=1e-4)
    assert losses['loss_distill'].item() == pytest.approx(alpha * distill.item(), rel=1e-4)


@pytest.mark.parametrize('distill_loss', [None, 'none'])
def test_distiller_without_distill_loss_gives_only_loss_cls(distill_loss):
    model = make_distiller(alpha=0.3, distill_loss=distill_loss)
    assert len(model.terms) == 0 and model.distill_active is False
    inputs, samples, labels = batch()
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_cls'}
    # No term reads the distillation head, so it learns from the labels next to the class
    # head (idle_dist_head='labels').
    cls, dist = model.student.forward_heads(inputs)
    k = cls.shape[1]
    smoothed = one_hot(labels, k) * 0.9 + 0.1 / k
    base = (ref_cross_entropy(cls, smoothed) + ref_cross_entropy(dist, smoothed)) / 2
    assert losses['loss_cls'].item() == pytest.approx(base.item(), rel=1e-4)


def test_non_distilled_student_distils_through_class_head():
    alpha = 0.4
    model = make_distiller(alpha=alpha, distilled=False)
    inputs, samples, labels = batch(seed=3)
    losses = model.loss(inputs, samples)
    cls, dist = model.student.forward_heads(inputs)
    assert dist is None
    t = teacher_reference(model, inputs)
    k = cls.shape[1]
    base = ref_cross_entropy(cls, one_hot(labels, k) * 0.9 + 0.1 / k)
    distill = ref_cross_entropy(cls, one_hot(t.argmax(-1), k))
    assert losses['loss_cls'].item() == pytest.approx((1 - alpha) * base.item(), rel=1e-4)
    assert losses['loss_distill'].item() == pytest.approx(alpha * distill.item(), rel=1e-4)


def test_distiller_loss_mode_through_forward_matches_loss():
    model = make_distiller()
    inputs, samples, _ = batch()
    via_forward = model(inputs, samples, mode='loss')
    direct = model.loss(inputs, samples)
    for key in direct:
        assert via_forward[key].item() == pytest.approx(direct[key].item(), rel=1e-6)


def test_inactive_distillation_does_not_run_teacher(monkeypatch):
    model = make_distiller(alpha=0.3)
    calls = []
    original = model.teacher.forward

    def counting_forward(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(model.teacher, 'forward', counting_forward)
    inputs, samples, labels = batch()
    assert set(model.loss(inputs, samples)) == {'loss_cls', 'loss_distill'}
    assert len(calls) == 1  # the patch is live: an active distiller calls the teacher

    model.set_stage({})
    losses = model.loss(inputs, samples)
    assert len(calls) == 1
    assert set(losses) == {'loss_cls', 'loss_distill'} and losses['loss_distill'] == 0
    # No term reads the distillation head, so it learns from the labels next to the class
    # head (idle_dist_head='labels').
    cls, dist = model.student.forward_heads(inputs)
    k = cls.shape[1]
    smoothed = one_hot(labels, k) * 0.9 + 0.1 / k
    base = (ref_cross_entropy(cls, smoothed) + ref_cross_entropy(dist, smoothed)) / 2
    assert losses['loss_cls'].item() == pytest.approx(base.item(), rel=1e-4)


@pytest.mark.parametrize('alpha', [-0.1, 1.5])
def test_distiller_rejects_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match=f'alpha.*{alpha}'):
        make_distiller(alpha=alpha)


def test_user_loss_gets_student_and_teacher_logits():
    """Any registered module with loss(student_logits, teacher_logits) plugs in."""
    model = make_distiller(alpha=0.5, distill_loss=dict(type='SoftDistillLoss', tau=1.0,
                                                        reduction='batchmean'))
    inputs, samples, _ = batch()
    _, dist = model.student.forward_heads(inputs)
    t = teacher_reference(model, inputs)
    want = 0.5 * ref_kl_sum(dist, t, 1.0) / dist.shape[0]
    assert model.loss(inputs, samples)['loss_distill'].item() == pytest.approx(
        want.item(), rel=1e-4)
