"""ReviewKD (Chen, Liu, Zhao and Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021):
the hierarchical context loss against a float64 evaluation written from its definition, and
the review connector (attention-based fusion from the deepest level upward) against a
float64 re-computation from its parameters, on CNN and ViT students.

The references are written independently of kdzoo's code: the HCL pools each map on its own
(explicit adaptive-pooling bins), loops over the pyramid with its weights 1, 1/2, 1/4, 1/8
and sums the levels; the connector's reference applies the convolutions, BatchNorm (running
statistics), nearest-neighbour resizing (explicit indices) and the attention fusion level
by level from the deepest. kdzoo computes the loss in float32 and must agree to 1e-5
relative, values and gradients, from ordinary to 1e4-scaled and near-constant features.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.losses.review_kd import HCLLoss
from kdzoo.models.cnn.cifar_resnet import CifarResNet
from kdzoo.models.connectors import missing_sizes
from kdzoo.models.review_kd import ReviewKDFusion
from kdzoo.registry import MODELS

RTOL = 1e-5


# ----- float64 references ---------------------------------------------------------------------
def ref_adaptive_pool(x, out):
    """Adaptive average pooling of a float64 (B, C, H, W) map to out x out: bin i spans rows
    floor(i H / out) .. ceil((i + 1) H / out) - 1 (and likewise the columns)."""
    b, c, h, w = x.shape
    result = torch.zeros(b, c, out, out, dtype=torch.float64)
    for i in range(out):
        r0, r1 = (i * h) // out, -((-(i + 1) * h) // out)
        for j in range(out):
            c0, c1 = (j * w) // out, -((-(j + 1) * w) // out)
            result[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(dim=(2, 3))
    return result


def ref_hcl(students, teachers, pool_sizes=(4, 2, 1)):
    """Sum over levels of (mse + sum_k 2^-k mse(pool_{l_k}(s), pool_{l_k}(t))) / (1 + sum_k
    2^-k), k counting the pool sizes l that neither enlarge nor keep the map (l <= H, W and
    (H, W) != (l, l))."""
    total = torch.zeros((), dtype=torch.float64)
    for s, t in zip(students, teachers):
        s, t = s.double(), t.double()
        h, w = s.shape[-2:]
        value, norm, weight = ((s - t) ** 2).mean(), 1.0, 1.0
        for size in pool_sizes:
            if size <= min(h, w) and not (h == size and w == size):
                weight = weight / 2
                norm += weight
                ps, pt = ref_adaptive_pool(s, size), ref_adaptive_pool(t, size)
                value = value + weight * ((ps - pt) ** 2).mean()
        total = total + value / norm
    return total


def ref_nearest(x, size):
    """Nearest-neighbour resizing (PyTorch's 'nearest': source index floor(i * in / out))."""
    h, w = x.shape[-2:]
    rows = [math.floor(i * h / size[0]) for i in range(size[0])]
    cols = [math.floor(j * w / size[1]) for j in range(size[1])]
    return x[:, :, rows][:, :, :, cols]


def ref_batch_norm(x, bn):
    """Eval-mode BatchNorm from its running statistics, float64."""
    shape = (1, -1, 1, 1)
    mean, var = bn.running_mean.double().view(shape), bn.running_var.double().view(shape)
    return ((x - mean) / torch.sqrt(var + bn.eps) * bn.weight.double().view(shape)
            + bn.bias.double().view(shape))


def ref_review(connector, maps, sizes=None):
    """The review, deepest level first: X_n = lat_n(F_n); X_i = a * lat_i(F_i) + b *
    nearest(X_{i+1}) with [a, b] = sigmoid(conv1x1([lat_i(F_i), nearest(X_{i+1})])); the
    output 3x3 conv + BN of X_i, resized bilinearly to the teacher's size."""
    n = len(maps)
    outputs, residual = [None] * n, None
    for i in range(n - 1, -1, -1):
        level = connector.levels[i]
        x = ref_batch_norm(F.conv2d(maps[i].double(), level.lateral[0].weight.double()),
                           level.lateral[1])
        if i < n - 1:
            y = ref_nearest(residual, x.shape[-2:])
            att = torch.sigmoid(F.conv2d(torch.cat([x, y], 1), level.attention.weight.double(),
                                         level.attention.bias.double()))
            x = att[:, :1] * x + att[:, 1:] * y
        residual = x
        out = ref_batch_norm(F.conv2d(x, level.output[0].weight.double(), padding=1),
                             level.output[1])
        if sizes is not None and tuple(out.shape[-2:]) != tuple(sizes[i]):
            out = F.interpolate(out, size=tuple(sizes[i]), mode='bilinear', align_corners=False)
        outputs[i] = out
    return outputs


# ----- helpers ------------------------------------------------------------------------------
def assert_close(got, expected, what, rtol=RTOL, atol=0.0):
    got, expected = got.double(), expected.double()
    assert torch.isfinite(got).all(), f'{what}: not finite'
    err = (got - expected).abs()
    bound = rtol * expected.abs() + atol
    worst = (err - bound).argmax()
    assert (err <= bound).all(), (f'{what}: {got.flatten()[worst].item()!r} vs '
                                  f'{expected.flatten()[worst].item()!r} (error '
                                  f'{err.flatten()[worst].item():.3g})')


def make_levels(shapes, seed, kind='normal', scale=1.0, dtype=torch.float32):
    """(students, teachers), one pair of maps per shape."""
    g = torch.Generator().manual_seed(seed)
    students, teachers = [], []
    for shape in shapes:
        if kind == 'normal':
            s, t = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        elif kind == 'near_constant':  # all-equal maps plus 1e-6 relative noise
            s = 1 + 1e-6 * torch.randn(shape, generator=g)
            t = 1 + 1e-6 * torch.randn(shape, generator=g)
        elif kind == 'close':  # the student within 1e-3 of the teacher
            t = torch.randn(shape, generator=g)
            s = t + 1e-3 * torch.randn(shape, generator=g)
        students.append((s * scale).to(dtype))
        teachers.append((t * scale).to(dtype))
    return students, teachers


LEVEL_SHAPES = [
    [(2, 4, 8, 8), (2, 8, 4, 4), (2, 16, 2, 2), (2, 16, 1, 1)],  # every pyramid case
    [(3, 5, 7, 7), (3, 6, 9, 5), (3, 2, 3, 3)],                  # uneven bins, non-square
    [(2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8)],           # ResNet-20's stages
    [(1, 3, 6, 6)],                                              # one level
]


def hcl_value_and_grads(loss, students, teachers):
    students = [s.detach().clone().requires_grad_() for s in students]
    value = loss(students, teachers)
    return value.detach(), torch.autograd.grad(value, students)


def ref_value_and_grads(students, teachers, pool_sizes=(4, 2, 1)):
    students = [s.detach().double().requires_grad_() for s in students]
    value = ref_hcl(students, [t.double() for t in teachers], pool_sizes)
    return value.detach(), torch.autograd.grad(value, students)


def check_against_reference(students, teachers, pool_sizes=(4, 2, 1)):
    value, grads = hcl_value_and_grads(HCLLoss(pool_sizes), students, teachers)
    ref_value, ref_grads = ref_value_and_grads(students, teachers, pool_sizes)
    assert value.dtype == torch.float32
    assert_close(value, ref_value, 'hcl')
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        # A gradient entry sums the full-resolution term and the pooled ones, which may
        # cancel: its error is bounded relative to the level's largest entry.
        assert_close(g, r, f'hcl gradient at level {i}', atol=RTOL * r.abs().max().item())


# ----- HCL loss -----------------------------------------------------------------------------
@pytest.mark.parametrize('shapes', LEVEL_SHAPES)
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_hcl_matches_float64(shapes, seed):
    check_against_reference(*make_levels(shapes, seed))


@pytest.mark.parametrize('kind,scale', [('normal', 1e4), ('normal', 1e3), ('close', 1e4),
                                        ('near_constant', 1.0), ('near_constant', 1e3),
                                        ('normal', 1e-4)])
def test_hcl_extreme_features(kind, scale):
    for shapes in LEVEL_SHAPES[:2]:
        check_against_reference(*make_levels(shapes, 5, kind=kind, scale=scale))


def test_hcl_pyramid_weights_by_hand():
    """A +-1 checkerboard difference: its mse is 1 and every 2x2-or-larger bin of it
    averages to 0, so HCL = 1 / (sum of the weights used): 1 + 1/2 + 1/4 + 1/8 at 8x8,
    1 + 1/2 + 1/4 at 4x4, 1 + 1/2 at 2x2, the full map alone at 1x1; a 3x3 map's 1x1 pool
    averages to 1/9 (weight 1/4, after the 2x2 pool)."""
    def board(n):
        i = torch.arange(n)
        return ((i[:, None] + i[None, :]) % 2 * 2 - 1).float().view(1, 1, n, n)
    loss = HCLLoss()
    for n, expected in [(8, 1 / 1.875), (4, 1 / 1.75), (2, 1 / 1.5), (1, 1.0),
                        (3, (1 + 0.25 / 81) / 1.75)]:
        d = board(n)
        assert loss([d], [torch.zeros_like(d)]).item() == pytest.approx(expected, rel=1e-6)
    # Levels add up.
    a, b = board(8), board(4)
    two = loss([a, b], [torch.zeros_like(a), torch.zeros_like(b)])
    assert two.item() == pytest.approx(1 / 1.875 + 1 / 1.75, rel=1e-6)


def test_hcl_pool_sizes_argument():
    students, teachers = make_levels(LEVEL_SHAPES[0], 3)
    check_against_reference(students, teachers, pool_sizes=(2, 1))
    check_against_reference(students, teachers, pool_sizes=())
    assert HCLLoss()(students, teachers) == HCLLoss((4, 2, 1))(students, teachers)


def test_hcl_zero_for_equal_maps_and_teacher_detached():
    students, teachers = make_levels(LEVEL_SHAPES[0], 4)
    assert HCLLoss()(teachers, teachers).item() == 0
    teachers = [t.requires_grad_() for t in teachers]
    students = [s.requires_grad_() for s in students]
    value = HCLLoss()(students, teachers)
    grads = torch.autograd.grad(value, teachers + students, allow_unused=True)
    assert all(g is None for g in grads[:len(teachers)])
    assert all(g is not None and g.abs().sum() > 0 for g in grads[len(teachers):])


def test_hcl_single_tensor_is_one_level():
    (s,), (t,) = make_levels([(2, 3, 8, 8)], 6)
    assert HCLLoss()(s, t) == HCLLoss()([s], [t])


@pytest.mark.parametrize('seed', [0, 1])
def test_hcl_bf16_autocast(seed):
    """bf16 maps under autocast: float32 result, as close to the float64 value of the same
    bf16 inputs as float32 allows; gradients come back in bf16 (rounded to bf16)."""
    students, teachers = make_levels(LEVEL_SHAPES[seed], seed, dtype=torch.bfloat16)
    students = [s.requires_grad_() for s in students]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = HCLLoss()(students, teachers)
    assert value.dtype == torch.float32
    grads = torch.autograd.grad(value, students)
    ref_value, ref_grads = ref_value_and_grads(students, teachers)
    assert_close(value, ref_value, 'hcl bf16')
    for g, r in zip(grads, ref_grads):
        assert g.dtype == torch.bfloat16
        assert_close(g, r, 'hcl bf16 gradient', rtol=2 ** -8,
                     atol=2 ** -8 * r.abs().max().item())


def test_hcl_bad_arguments():
    students, teachers = make_levels(LEVEL_SHAPES[0], 0)
    with pytest.raises(ValueError, match='4 student levels and 3 teacher levels'):
        HCLLoss()(students, teachers[:3])
    with pytest.raises(ValueError, match='level 1'):
        HCLLoss()(students, [teachers[0], teachers[0], teachers[2], teachers[3]])
    with pytest.raises(ValueError, match='same shape'):
        HCLLoss()([torch.zeros(2, 3, 4)], [torch.zeros(2, 3, 4)])
    with pytest.raises(ValueError, match='non-empty list'):
        HCLLoss()([], [])
    for bad in [(1, 2), (4, 4), (0,), (2.0, 1), 4, ('4',)]:
        with pytest.raises(ValueError, match='pool_sizes'):
            HCLLoss(bad)


# ----- the review connector -----------------------------------------------------------------
def stage_outputs(net, x, names=('layer1', 'layer2', 'layer3')):
    """The outputs of the named stages of ``net`` on ``x`` (forward hooks)."""
    found = {}
    handles = [getattr(net, n).register_forward_hook(
        lambda module, inputs, output, n=n: found.__setitem__(n, output)) for n in names]
    net(x)
    for h in handles:
        h.remove()
    return [found[n] for n in names]


def randomize_batch_norms(module, seed):
    """Random running statistics and affine parameters (so that the reference checks them)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))


def cnn_pair_features(seed=0):
    torch.manual_seed(seed)
    student, teacher = CifarResNet(depth=8), CifarResNet(depth=20)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        teacher_maps = stage_outputs(teacher, x)
    return stage_outputs(student, x), teacher_maps


def test_connector_resnet8_to_resnet20_shapes_and_gradients():
    students, teachers = cnn_pair_features()
    connector = ReviewKDFusion([s.shape[1] for s in students], [t.shape[1] for t in teachers])
    assert connector.mid_channels == 64
    outputs = connector(students, size=[t.shape[-2:] for t in teachers])
    assert [o.shape for o in outputs] == [t.shape for t in teachers]
    loss = HCLLoss()(outputs, teachers)
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in connector.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f'no gradient reaches {name}'


def micro_deit_tokens(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 2 + 64, 128, generator=g) for _ in range(3)]


TEACHER_MAPS = [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def test_connector_micro_deit_tokens_to_resnet20_maps():
    tokens = [t.requires_grad_() for t in micro_deit_tokens()]
    connector = ReviewKDFusion([128] * 3, [c for c, _, _ in TEACHER_MAPS], num_prefix_tokens=2)
    assert connector.mid_channels == 128
    outputs = connector(tokens, size=[(h, w) for _, h, w in TEACHER_MAPS])
    assert [tuple(o.shape) for o in outputs] == [(2, *m) for m in TEACHER_MAPS]
    teachers = [torch.randn(o.shape) for o in outputs]
    loss = HCLLoss()(outputs, teachers)
    loss.backward()
    for name, p in connector.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f'no gradient reaches {name}'
    for t in tokens:  # the cls and dist tokens are dropped, every patch token is used
        assert t.grad[:, :2].abs().sum() == 0
        assert (t.grad[:, 2:].abs().sum(dim=(0, 2)) > 0).all()


def test_connector_tokens_form_a_row_major_grid():
    """Token 2 + r * 8 + c (after the cls and dist tokens) is the map's pixel (r, c); the
    outputs without ``size`` keep the 8x8 grid."""
    tokens = micro_deit_tokens(seed=3)
    maps = [torch.stack([torch.stack([t[:, 2 + r * 8 + c] for c in range(8)], dim=-1)
                         for r in range(8)], dim=-2) for t in tokens]
    assert maps[0].shape == (2, 128, 8, 8)
    connector = ReviewKDFusion([128] * 3, [16, 32, 64], num_prefix_tokens=2).eval()
    with torch.no_grad():
        from_tokens, from_maps = connector(tokens), connector(maps)
    for a, b in zip(from_tokens, from_maps):
        assert a.shape[-2:] == (8, 8)
        # Equal up to the convolutions' summation order (the token map is not contiguous).
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('shapes,out_channels,sizes', [
    ([(2, 4, 8, 8), (2, 6, 4, 4), (2, 8, 2, 2)], [3, 5, 7], None),
    ([(2, 4, 6, 6), (2, 6, 4, 4), (2, 3, 4, 4)], [5, 5, 2], [(12, 12), (4, 4), (2, 2)]),
    ([(3, 2, 5, 5), (3, 3, 2, 2)], [4, 4], [(7, 7), (3, 3)]),
])
def test_connector_matches_float64_reference(shapes, out_channels, sizes):
    g = torch.Generator().manual_seed(11)
    maps = [torch.randn(s, generator=g) for s in shapes]
    connector = ReviewKDFusion([s[1] for s in shapes], out_channels, mid_channels=6)
    randomize_batch_norms(connector, 12)
    with torch.no_grad():  # attention maps far from 1/2, so each weighting matters
        for level in connector.levels:
            if level.attention is not None:
                level.attention.weight.mul_(3)
                level.attention.bias.copy_(torch.tensor([1.5, -1.0]))
    connector.eval()
    with torch.no_grad():
        got = connector(maps, size=sizes)
    expected = ref_review(connector, maps, sizes)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape
        assert_close(a, b, f'level {i}', rtol=1e-4, atol=1e-5 * b.abs().max().item())


def test_connector_fusion_runs_from_deep_to_shallow():
    """Output i depends on the student's levels i, i+1, ... and on no shallower level."""
    g = torch.Generator().manual_seed(0)
    features = [torch.randn(s, generator=g).requires_grad_()
                for s in [(2, 4, 8, 8), (2, 6, 4, 4), (2, 8, 2, 2)]]
    connector = ReviewKDFusion([4, 6, 8], [3, 5, 7])
    outputs = connector(features)
    for i, out in enumerate(outputs):
        # A random weighting: the sum of a train-mode BatchNorm's output is constant.
        probe = (out * torch.randn(out.shape, generator=g)).sum()
        grads = torch.autograd.grad(probe, features, retain_graph=True, allow_unused=True)
        for j, grad in enumerate(grads):
            reached = grad is not None and grad.abs().sum() > 0
            verb = 'depends' if reached else 'does not depend'
            assert reached == (j >= i), f'output {i} {verb} on student level {j}'


@pytest.mark.parametrize('own', [True, False])
def test_connector_attention_maps_weight_the_two_inputs(own):
    """With the attention saturated to (1, 0) the shallow output sees only its own level,
    with (0, 1) only the deeper level's residual: the first map weighs the level's own
    feature, the second the residual."""
    g = torch.Generator().manual_seed(1)
    features = [torch.randn(s, generator=g) for s in [(2, 4, 8, 8), (2, 6, 4, 4)]]
    connector = ReviewKDFusion([4, 6], [3, 5]).eval()
    with torch.no_grad():
        connector.levels[0].attention.weight.zero_()
        connector.levels[0].attention.bias.copy_(torch.tensor([40.0, -40.0] if own
                                                               else [-40.0, 40.0]))
        base = connector(features)[0]
        changed = [features[0], features[1] + torch.randn(features[1].shape, generator=g)]
        deeper_changed = connector(changed)[0]
        changed = [features[0] + torch.randn(features[0].shape, generator=g), features[1]]
        own_changed = connector(changed)[0]
    if own:
        torch.testing.assert_close(deeper_changed, base)
        assert not torch.allclose(own_changed, base)
    else:
        torch.testing.assert_close(own_changed, base)
        assert not torch.allclose(deeper_changed, base)


def test_connector_bf16_autocast():
    students, teachers = cnn_pair_features(seed=1)
    connector = ReviewKDFusion([16, 32, 64], [16, 32, 64])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outputs = connector(students, size=[t.shape[-2:] for t in teachers])
        loss = HCLLoss()(outputs, teachers)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in connector.parameters())


def test_connector_defaults_and_registry():
    assert ReviewKDFusion([64, 128, 1024], [1, 2, 3]).mid_channels == 512
    assert ReviewKDFusion([16, 8], [1, 2]).mid_channels == 8
    assert ReviewKDFusion([16, 8], [1, 2], mid_channels=5).mid_channels == 5
    assert ReviewKDFusion([16, 8], [1, 2]).num_prefix_tokens == 0
    assert sorted(missing_sizes(dict(type='ReviewKDFusion'))) == [
        'in_channels', 'num_prefix_tokens', 'out_channels']
    built = MODELS.build(dict(type='ReviewKDFusion', in_channels=[4, 6], out_channels=[3, 5]))
    assert isinstance(built, ReviewKDFusion)
    assert isinstance(MODELS.build(dict(type='HCLLoss')), HCLLoss)


def test_connector_bad_arguments():
    with pytest.raises(ValueError, match='in_channels has 3 levels and out_channels 2'):
        ReviewKDFusion([4, 6, 8], [3, 5])
    with pytest.raises(ValueError, match='in_channels must be a non-empty list'):
        ReviewKDFusion(16, [16])
    with pytest.raises(ValueError, match='out_channels must be a non-empty list'):
        ReviewKDFusion([16], [])
    with pytest.raises(ValueError, match=r'in_channels\[1\]'):
        ReviewKDFusion([16, 0], [16, 16])
    with pytest.raises(ValueError, match='mid_channels'):
        ReviewKDFusion([16], [16], mid_channels=0)
    with pytest.raises(ValueError, match='num_prefix_tokens'):
        ReviewKDFusion([16], [16], num_prefix_tokens=-1)
    connector = ReviewKDFusion([4, 6], [3, 5])
    maps = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)]
    with pytest.raises(ValueError, match='got 1 feature levels, built for 2'):
        connector(maps[:1])
    with pytest.raises(ValueError, match='got 3 teacher sizes for 2 levels'):
        connector(maps, size=[(8, 8)] * 3)
    with pytest.raises(ValueError, match='level 1 has 4 channels, built for 6'):
        connector([maps[0], maps[0]])
    with pytest.raises(ValueError, match='list of feature tensors'):
        connector(maps[0])
    with pytest.raises(ValueError, match='batch size'):
        connector([maps[0], maps[1][:1]])
    with pytest.raises(ValueError, match='square grid'):
        ReviewKDFusion([8], [8], num_prefix_tokens=1)([torch.randn(2, 66, 8)])
    with pytest.raises(ValueError, match=r'expected \(B, C, H, W\)'):
        connector([torch.randn(2, 4), maps[1]])
