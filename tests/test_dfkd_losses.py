"""DF-DearKD's losses: BatchNorm statistics (DeepInversion's R_feature), image priors and
the boundary-preserving intra-divergence loss, checked against computations done here."""
import pytest
import torch
import torch.nn as nn

from kdzoo.losses import BNStatisticsLoss, ImagePriorLoss, IntraDivergenceLoss
from kdzoo.losses.image_prior import image_l2_norm, total_variation_l1, total_variation_l2
from kdzoo.losses.intra_divergence import mine_triplets
from kdzoo.registry import MODELS

torch.set_num_threads(1)


def small_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 5, 3), nn.BatchNorm2d(5), nn.ReLU())
    for bn in (net[1], net[4]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def stat_term(h, bn):
    """||mean - running_mean||_2 + ||biased var - running_var||_2, from sums."""
    n = h.shape[0] * h.shape[2] * h.shape[3]
    mean = h.sum(dim=(0, 2, 3)) / n
    var = ((h - mean.view(1, -1, 1, 1)) ** 2).sum(dim=(0, 2, 3)) / n
    return (torch.sqrt(((mean - bn.running_mean) ** 2).sum())
            + torch.sqrt(((var - bn.running_var) ** 2).sum()))


@pytest.mark.parametrize('multiplier', [1.0, 10.0])
def test_bn_loss_equals_the_layer_statistics_computed_directly(multiplier):
    net = small_net()
    x = torch.randn(6, 3, 9, 9)
    loss = BNStatisticsLoss(first_bn_multiplier=multiplier)
    with loss.attached(net):
        net(x)
        value = loss()
    with torch.no_grad():
        h1 = net[0](x)
        h2 = net[3](net[2](net[1](h1)))
        expected = multiplier * stat_term(h1, net[1]) + stat_term(h2, net[4])
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_bn_loss_is_zero_when_batch_statistics_equal_running_ones():
    net = small_net()
    x = torch.randn(6, 3, 9, 9)
    with torch.no_grad():  # set each layer's running stats to its batch stats, in order
        h = net[0](x)
        net[1].running_mean.copy_(h.mean(dim=(0, 2, 3)))
        net[1].running_var.copy_(h.var(dim=(0, 2, 3), unbiased=False))
        h = net[3](net[2](net[1](h)))
        net[4].running_mean.copy_(h.mean(dim=(0, 2, 3)))
        net[4].running_var.copy_(h.var(dim=(0, 2, 3), unbiased=False))
    x.requires_grad_(True)
    loss = BNStatisticsLoss(first_bn_multiplier=10.0)
    with loss.attached(net):
        net(x)
        value = loss()
    assert value.item() == pytest.approx(0.0, abs=1e-4)
    (grad,) = torch.autograd.grad(value, x)
    assert torch.isfinite(grad).all()
    # and it is not zero for another batch
    with loss.attached(net):
        net(torch.randn(6, 3, 9, 9) * 3)
        assert loss().item() > 0.1


def test_bn_loss_hooks_are_removed_and_keep_nothing():
    net = small_net()
    loss = MODELS.build(dict(type='BNStatisticsLoss'))
    with loss.attached(net):
        assert loss.layer_names == ['1', '4']
        net(torch.randn(2, 3, 9, 9))
        assert len(loss.layer_terms()) == 2
    assert all(not m._forward_hooks for m in net.modules())
    assert loss.layer_terms() == {}
    net(torch.randn(2, 3, 9, 9))  # not recorded any more
    with pytest.raises(RuntimeError, match='no BatchNorm statistics'):
        loss()
    with pytest.raises(ValueError, match='no BatchNorm2d'):
        loss.attach(nn.Sequential(nn.Conv2d(3, 3, 1)))


def test_image_priors_match_pixel_loops():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5)
    for b in range(2):
        sq_h = sq_w = abs_h = abs_w = 0.0
        for c in range(3):
            for i in range(4):
                for j in range(5):
                    if i + 1 < 4:
                        d = (x[b, c, i + 1, j] - x[b, c, i, j]).item()
                        sq_h += d * d
                        abs_h += abs(d)
                    if j + 1 < 5:
                        d = (x[b, c, i, j + 1] - x[b, c, i, j]).item()
                        sq_w += d * d
                        abs_w += abs(d)
        assert total_variation_l2(x)[b].item() == pytest.approx(sq_h ** 0.5 + sq_w ** 0.5,
                                                                rel=1e-5)
        assert total_variation_l1(x)[b].item() == pytest.approx(abs_h / 45 + abs_w / 48,
                                                                rel=1e-5)
        assert image_l2_norm(x)[b].item() == pytest.approx(
            (x[b] ** 2).sum().sqrt().item(), rel=1e-5)
    prior = ImagePriorLoss(tv_l2_weight=1e-4, tv_l1_weight=0.5, l2_weight=1e-5)(x)
    expected = 1e-4 * total_variation_l2(x) + 0.5 * total_variation_l1(x) + 1e-5 * image_l2_norm(x)
    assert torch.allclose(prior, expected)
    assert torch.equal(ImagePriorLoss()(torch.ones(1, 3, 4, 4) * 2),
                       1e-5 * image_l2_norm(torch.ones(1, 3, 4, 4) * 2))


# Points on a line: class 0 at 0, 1, 5; class 1 at 2, 10; class 2 (alone) at 20.
LINE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [2.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
LABELS = torch.tensor([0, 0, 0, 1, 1, 2])


def test_mining_picks_easy_positive_hard_positive_and_hard_negative():
    t = mine_triplets(LINE, LABELS)
    assert t.anchor.tolist() == [0, 1, 2, 3, 4]  # index 5 has no same-class partner
    assert t.easy_positive.tolist() == [1, 0, 1, 4, 3]
    assert t.hard_positive.tolist() == [2, 2, 0, 4, 3]
    assert t.hard_negative.tolist() == [3, 3, 3, 1, 2]
    one_class = mine_triplets(LINE[:3], LABELS[:3])
    assert one_class.hard_negative.tolist() == [-1, -1, -1]


def test_intra_divergence_values_follow_the_definitions():
    d_ep = torch.tensor([1.0, 1.0, 4.0, 8.0, 8.0])
    # d(a, hp) - d(a, hn) + 1 per anchor: 5-2+1, 4-1+1, 5-3+1, 8-1+1, 8-5+1
    triplet = torch.tensor([4.0, 4.0, 3.0, 8.0, 4.0]).mean()
    neg = IntraDivergenceLoss(alpha_ep=2.0, alpha_triplet=0.5, margin=1.0, ep_form='negative')
    assert neg(LINE, LABELS).item() == pytest.approx(
        (2 * -d_ep.mean() + 0.5 * triplet).item(), rel=1e-5)
    inv = IntraDivergenceLoss(alpha_ep=2.0, alpha_triplet=0.0, ep_form='inverse')
    assert inv(LINE, LABELS).item() == pytest.approx(
        (2 * (1 / (1 + d_ep)).mean()).item(), rel=1e-5)
    # a batch of one class has no triplet term
    assert IntraDivergenceLoss(alpha_ep=0.0, margin=0.0)(LINE[:3], LABELS[:3]).item() == 0.0
    # no anchor at all: zero, still differentiable
    f = torch.randn(3, 4, requires_grad=True)
    out = IntraDivergenceLoss()(f, torch.tensor([0, 1, 2]))
    out.backward()
    assert out.item() == 0.0 and torch.equal(f.grad, torch.zeros(3, 4))


def test_spread_margin_scales_with_the_anchors_class():
    # class spreads: class 0 (0, 1, 5): (1 + 5 + 4) / 3; class 1 (2, 10): 8
    spread = [10 / 3, 10 / 3, 10 / 3, 8.0, 8.0]
    # d(a, hp) - d(a, hn) per anchor: 5-2, 4-1, 5-3, 8-1, 8-5
    gap = [3.0, 3.0, 2.0, 7.0, 3.0]
    expected = sum(max(0.0, g + 0.5 * s) for g, s in zip(gap, spread)) / 5
    loss = IntraDivergenceLoss(alpha_ep=0.0, alpha_triplet=1.0, margin=0.5,
                               margin_mode='spread')
    assert loss(LINE, LABELS).item() == pytest.approx(expected, rel=1e-5)
    # the margin carries no gradient of its own: same gradient as a fixed margin per anchor
    f = LINE.clone().requires_grad_(True)
    loss(f, LABELS).backward()
    f2 = LINE.clone().requires_grad_(True)
    IntraDivergenceLoss(alpha_ep=0.0, alpha_triplet=1.0, margin=0.0)(f2, LABELS).backward()
    assert torch.allclose(f.grad, f2.grad)  # every triplet is active in both
    with pytest.raises(ValueError, match="margin_mode must be one of"):
        IntraDivergenceLoss(margin_mode='relative')


@pytest.mark.parametrize('ep_form', ['negative', 'inverse'])
def test_a_gradient_step_pushes_the_easy_positive_away(ep_form):
    f = LINE.clone().requires_grad_(True)
    loss = IntraDivergenceLoss(alpha_ep=1.0, alpha_triplet=0.0, ep_form=ep_form)
    loss(f, LABELS).backward()
    with torch.no_grad():
        g = f - 0.1 * f.grad
    for a, ep in [(0, 1), (3, 4)]:
        assert (g[a] - g[ep]).norm() > (LINE[a] - LINE[ep]).norm()


def test_a_gradient_step_shrinks_a_violated_triplet():
    f = LINE.clone().requires_grad_(True)
    loss = IntraDivergenceLoss(alpha_ep=0.0, alpha_triplet=1.0, margin=1.0)
    before = loss(f, LABELS)
    assert before.item() > 0  # anchor 0: hard positive at 5, hard negative at 2
    before.backward()
    with torch.no_grad():
        g = f - 0.1 * f.grad
    assert loss(g, LABELS).item() < before.item()
    assert (g[0] - g[2]).norm() < 5.0  # hard positive pulled in
    assert (g[0] - g[3]).norm() > 2.0  # hard negative pushed out
