"""The transformer-student feature losses of the zoo against float64 evaluations written
from their papers' equations: ViTKD (Yang et al., arXiv 2022) and fine-grained manifold
distillation (Hao et al., NeurIPS 2022).

The references below are written independently of kdzoo's code, in float64, one image, one
patch position or one output pixel at a time: tokens of a map are read pixel by pixel, the
bilinear resize (``align_corners=False``) and the 3x3 convolutions are explicit sums over
source pixels and kernel taps, the relation matrices are built per image / per position.
kdzoo's losses compute in float32 and must agree to 1e-5 relative (values and gradients),
with the float64 references evaluated on the same inputs and, for ViTKD, on float64 copies
of the loss's own parameters and the same (injected) mask or sample.
"""
import math

import pytest
import torch

from kdzoo.losses.manifold import ManifoldLoss
from kdzoo.losses.vitkd import ViTKDLoss
from kdzoo.models.distill_term import bind_arguments
from kdzoo.registry import MODELS

RTOL = 1e-5


# ----- float64 references -----------------------------------------------------------------
def ref_tokens(x, prefix):
    """(list over images of (N, C) float64 patch tokens, grid or None)."""
    x = x.double()
    if x.dim() == 4:
        b, c, h, w = x.shape
        images = [torch.stack([x[i, :, r, q] for r in range(h) for q in range(w)])
                  for i in range(b)]
        return images, (h, w)
    n = x.shape[1] - prefix
    side = int(round(math.sqrt(n)))
    return [x[i, prefix:] for i in range(x.shape[0])], ((side, side) if side * side == n
                                                         else None)


def ref_resize(tokens, grid, size):
    """Bilinear resize (align_corners=False) of one image's (h*w, C) tokens to ``size``,
    one output pixel at a time; returns (H*W, C) tokens."""
    (h, w), (oh, ow) = grid, size
    if (h, w) == (oh, ow):
        return tokens

    def taps(out, n_in, n_out):
        src = max((out + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        frac = src - i0
        return i0, i1, frac

    out = []
    for r in range(oh):
        r0, r1, fr = taps(r, h, oh)
        for q in range(ow):
            q0, q1, fq = taps(q, w, ow)
            px = lambda a, b: tokens[a * w + b]  # noqa: E731
            out.append((1 - fr) * ((1 - fq) * px(r0, q0) + fq * px(r0, q1))
                       + fr * ((1 - fq) * px(r1, q0) + fq * px(r1, q1)))
    return torch.stack(out)


def ref_conv3x3(image, weight, bias):
    """(C_out, H, W) zero-padded 3x3 convolution of a (C_in, H, W) image, tap by tap."""
    _, h, w = image.shape
    out = bias[:, None, None].repeat(1, h, w)
    padded = torch.nn.functional.pad(image, (1, 1, 1, 1))
    for dy in range(3):
        for dx in range(3):
            out = out + torch.einsum('oc,chw->ohw', weight[:, :, dy, dx],
                                     padded[:, dy:dy + h, dx:dx + w])
    return out


def ref_pairs(students, teachers, sp, tp):
    """Per layer: (list over images of student tokens on the teacher grid, teacher tokens,
    teacher grid)."""
    pairs = []
    for s, t in zip(students, teachers):
        s_img, s_grid = ref_tokens(s, sp)
        t_img, t_grid = ref_tokens(t, tp)
        if s_grid is not None and t_grid is not None:
            s_img = [ref_resize(x, s_grid, t_grid) for x in s_img]
        pairs.append((s_img, t_img, t_grid))
    return pairs


def ref_vitkd(students, teachers, params, mask, alpha, beta, lam, sp=0, tp=0):
    """Yang et al.: alpha * sum_l sum (W_l s - t)^2 / B + beta * sum_masked (G(M(W s)) -
    t)^2 / (B * lambda). ``params``: float64 {name: tensor} of the loss's parameters."""
    pairs = ref_pairs(students, teachers, sp, tp)
    batch = len(pairs[0][0])

    def project(x, prefix):
        if f'{prefix}.weight' not in params:
            return x
        return torch.stack([params[f'{prefix}.weight'] @ v + params[f'{prefix}.bias']
                            for v in x])

    mimic = 0
    for layer, (s_img, t_img, _) in enumerate(pairs[:-1]):
        for s, t in zip(s_img, t_img):
            mimic = mimic + ((project(s, f'mimic.{layer}') - t) ** 2).sum()
    s_img, t_img, (h, w) = pairs[-1]
    gen = 0
    for b, (s, t) in enumerate(zip(s_img, t_img)):
        a = project(s, 'align')
        a = torch.stack([params['mask_token'][0, 0] if mask[b, n] else a[n]
                         for n in range(len(a))])
        image = a.T.reshape(-1, h, w)
        g = ref_conv3x3(image, params['generation.0.weight'], params['generation.0.bias'])
        g = ref_conv3x3(torch.clamp(g, min=0), params['generation.2.weight'],
                        params['generation.2.bias'])
        for n in range(h * w):
            if mask[b, n]:
                gen = gen + ((g[:, n // w, n % w] - t[n]) ** 2).sum()
    return alpha * mimic / batch + beta * gen / (batch * lam)


def ref_unit(v, eps=1e-12):
    return v / max(torch.sqrt((v * v).sum()), torch.tensor(eps, dtype=v.dtype))


def ref_relation(rows):
    """The relation matrix of a list of unit vectors, entry by entry of each row."""
    return torch.stack([torch.stack([(a * b).sum() for b in rows]) for a in rows])


def ref_manifold(s, t, index, alpha, beta, gamma, sp=0, tp=0, unit_student=True):
    """Hao et al.: alpha * mean_b |M(F_s[b]) - M(F_t[b])|^2 + beta * mean_n |M(F_s[:, n]) -
    M(F_t[:, n])|^2 + gamma * |M(F_s[S]) - M(F_t[S])|^2 / K^2, each squared Frobenius norm
    divided by the matrix's entries."""
    ((s_img, t_img, _),) = ref_pairs([s], [t], sp, tp)
    us = [torch.stack([ref_unit(v) if unit_student else v for v in x]) for x in s_img]
    ut = [torch.stack([ref_unit(v) for v in x]) for x in t_img]
    b, n = len(us), len(us[0])
    intra = sum(((x @ x.T - y @ y.T) ** 2).sum() for x, y in zip(us, ut)) / (b * n * n)
    inter = 0
    for p in range(n):
        x = torch.stack([us[i][p] for i in range(b)])
        y = torch.stack([ut[i][p] for i in range(b)])
        inter = inter + ((ref_relation(list(x)) - ref_relation(list(y))) ** 2).sum()
    inter = inter / (n * b * b)
    xs = [us[k // n][k % n] for k in index.tolist()]
    ys = [ut[k // n][k % n] for k in index.tolist()]
    rand = ((ref_relation(xs) - ref_relation(ys)) ** 2).sum() / len(xs) ** 2
    return alpha * intra + beta * inter + gamma * rand


# ----- comparison ---------------------------------------------------------------------------
def assert_close(got, expected, what, atol=0.0):
    """|got - expected| <= RTOL * |expected| + atol, everything finite."""
    got, expected = got.double(), expected.double()
    assert torch.isfinite(got).all(), f'{what}: not finite'
    err = (got - expected).abs()
    bound = RTOL * expected.abs() + atol
    worst = (err - bound).argmax()
    assert (err <= bound).all(), (f'{what}: {got.flatten()[worst].item()!r} vs '
                                  f'{expected.flatten()[worst].item()!r} (error '
                                  f'{err.flatten()[worst].item():.3g})')


def assert_grads(got, expected, what, floor=0.0):
    """Each gradient entry to 1e-5 relative, with an absolute floor of 1e-5 of the largest
    entry (entries near 0 are sums of cancelling terms) plus ``floor``."""
    assert_close(got, expected, what, atol=RTOL * expected.abs().max().item() + floor)


def fixed_mask(b, n, seed, ratio=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, generator=g) < ratio


def features(shape, seed, kind='normal'):
    g = torch.Generator().manual_seed(seed)
    if kind == 'normal':
        return torch.randn(shape, generator=g)
    if kind == 'large':  # magnitudes up to 1e4
        return (torch.rand(shape, generator=g) * 2 - 1) * 1e4
    if kind == 'near_constant':  # every channel 1 (maps: every pixel) + 1e-6 noise
        return 1 + 1e-6 * torch.randn(shape, generator=g)
    raise ValueError(kind)


def randomise(loss, seed):
    """Random (non-zero) values for every parameter of ``loss``, the mask token included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in loss.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return loss


def vitkd_case(loss, students, teachers, mask, monkeypatch):
    """(value, student gradients, parameter gradients) of ``loss`` and of the float64
    reference on float64 copies of everything."""
    monkeypatch.setattr(loss, 'sample_mask', lambda b, n, device: mask.to(device))
    s32 = [x.detach().clone().requires_grad_() for x in students]
    names = [k for k, _ in loss.named_parameters()]
    value = loss(s32, teachers)
    grads = torch.autograd.grad(value, s32 + list(loss.parameters()))
    s64 = [x.detach().double().requires_grad_() for x in students]
    p64 = {k: p.detach().double().requires_grad_() for k, p in loss.named_parameters()}
    ref = ref_vitkd(s64, teachers, p64, mask, loss.alpha_vitkd, loss.beta_vitkd,
                    loss.lambda_vitkd, loss.student_prefix_tokens,
                    loss.teacher_prefix_tokens)
    ref_grads = torch.autograd.grad(ref, s64 + [p64[k] for k in names])
    return value, grads, ref, ref_grads, names


# ----- ViTKD --------------------------------------------------------------------------------
# (student shapes, teacher shapes, student channels, teacher channels, prefixes)
VITKD_CASES = {
    # the CIFAR setting: micro DeiT tokens (2 prefix, 8x8) against ResNet-20 maps
    'deit_vs_resnet_maps': ([(2, 66, 12)] * 3, [(2, 4, 32, 32), (2, 6, 16, 16), (2, 8, 8, 8)],
                            [12, 12, 12], [4, 6, 8], (2, 0)),
    # ViT to ViT, a class token on both sides, 4x4 grids, different widths
    'vit_vs_vit_tokens': ([(3, 17, 6), (3, 17, 6)], [(3, 17, 10), (3, 17, 10)],
                          [6, 6], [10, 10], (1, 1)),
    # a deep layer on a larger teacher grid, a shallow one on a smaller token grid
    'resize_both_ways': ([(2, 66, 5), (2, 66, 5)], [(2, 17, 7), (2, 3, 16, 16)],
                         [5, 5], [7, 3], (2, 1)),
    # one pair only (deep), equal widths: no projection
    'deep_only_same_width': ([(2, 16, 6)], [(2, 6, 4, 4)], [6], [6], (0, 0)),
}


def build_vitkd(case, seed=0, **kwargs):
    s_shapes, t_shapes, cs, ct, (sp, tp) = VITKD_CASES[case]
    loss = randomise(ViTKDLoss(cs, ct, student_prefix_tokens=sp, teacher_prefix_tokens=tp,
                               **kwargs), seed)
    return loss, s_shapes, t_shapes


@pytest.mark.parametrize('case', list(VITKD_CASES))
@pytest.mark.parametrize('seed', [0, 1])
def test_vitkd_matches_float64_reference(case, seed, monkeypatch):
    loss, s_shapes, t_shapes = build_vitkd(case, seed, alpha_vitkd=0.7, beta_vitkd=0.3,
                                           lambda_vitkd=0.5 if seed == 0 else 0.25)
    students = [features(s, 10 * seed + i) for i, s in enumerate(s_shapes)]
    teachers = [features(t, 10 * seed + 5 + i) for i, t in enumerate(t_shapes)]
    t_grid_tokens = math.prod(t_shapes[-1][-2:]) if len(t_shapes[-1]) == 4 else (
        t_shapes[-1][1] - loss.teacher_prefix_tokens)
    mask = fixed_mask(s_shapes[-1][0], t_grid_tokens, seed)
    value, grads, ref, ref_grads, names = vitkd_case(loss, students, teachers, mask,
                                                     monkeypatch)
    assert value.dtype == torch.float32
    assert_close(value, ref, f'{case} value')
    labels = [f'student_features[{i}]' for i in range(len(students))] + names
    for label, g, r in zip(labels, grads, ref_grads):
        assert_grads(g, r, f'{case} gradient to {label}')


@pytest.mark.parametrize('kind', ['large', 'near_constant'])
def test_vitkd_extreme_features_match_float64(kind, monkeypatch):
    loss, s_shapes, t_shapes = build_vitkd('deit_vs_resnet_maps', 3)
    students = [features(s, 20 + i, kind) for i, s in enumerate(s_shapes)]
    teachers = [features(t, 30 + i, kind) for i, t in enumerate(t_shapes)]
    value, grads, ref, ref_grads, names = vitkd_case(loss, students, teachers,
                                                     fixed_mask(2, 64, 4), monkeypatch)
    assert_close(value, ref, f'{kind} value')
    for label, g, r in zip(['s0', 's1', 's2'] + names, grads, ref_grads):
        assert_grads(g, r, f'{kind} gradient to {label}')


def test_vitkd_prefix_tokens_do_not_matter(monkeypatch):
    """Only patch tokens count: changing the class/distillation tokens changes nothing."""
    loss, s_shapes, t_shapes = build_vitkd('vit_vs_vit_tokens', 0)
    monkeypatch.setattr(loss, 'sample_mask',
                        lambda b, n, device: fixed_mask(b, n, 1).to(device))
    students = [features(s, i) for i, s in enumerate(s_shapes)]
    teachers = [features(t, 5 + i) for i, t in enumerate(t_shapes)]
    before = loss(students, teachers)
    for x in students + teachers:
        x[:, 0] = 1e3
    assert torch.equal(loss(students, teachers), before)


def test_vitkd_mask_matters_and_only_masked_tokens_count(monkeypatch):
    """The generation loss reads the teacher's masked tokens only, and the mask token
    replaces the masked student tokens (a different mask gives a different loss)."""
    loss, s_shapes, t_shapes = build_vitkd('deep_only_same_width', 0)
    mask = fixed_mask(2, 16, 2)
    monkeypatch.setattr(loss, 'sample_mask', lambda b, n, device: mask)
    students = [features(s_shapes[0], 1)]
    teacher = features(t_shapes[0], 2)
    value = loss(students, [teacher])
    changed = teacher.clone().flatten(2)
    changed[~mask.unsqueeze(1).expand_as(changed)] += 5.0  # unmasked positions only
    assert torch.equal(loss(students, [changed.reshape(teacher.shape)]), value)
    monkeypatch.setattr(loss, 'sample_mask', lambda b, n, device: ~mask)
    assert not torch.allclose(loss(students, [teacher]), value)


def test_vitkd_every_trainable_part_gets_a_gradient():
    loss = ViTKDLoss([12, 12, 12], [4, 6, 8], student_prefix_tokens=2)
    students = [features((2, 66, 12), i).requires_grad_() for i in range(3)]
    teachers = [features((2, 4, 32, 32), 5), features((2, 6, 16, 16), 6),
                features((2, 8, 8, 8), 7)]
    torch.manual_seed(0)
    loss(students, teachers).backward()
    names = {k for k, _ in loss.named_parameters()}
    assert {'mimic.0.weight', 'mimic.1.bias', 'align.weight', 'mask_token',
            'generation.0.weight', 'generation.2.bias'} <= names
    for k, p in loss.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f'{k} gets no gradient'
    assert all(x.grad.abs().sum() > 0 for x in students)
    assert 'mask_token' in loss.state_dict()


def test_vitkd_sample_mask_masks_the_fraction_per_image_from_the_global_generator():
    loss = ViTKDLoss([4], [4], lambda_vitkd=0.3)
    torch.manual_seed(5)
    mask = loss.sample_mask(6, 64, torch.device('cpu'))
    assert mask.dtype == torch.bool and mask.shape == (6, 64)
    assert (mask.sum(1) == 64 - int(64 * 0.7)).all()  # 20 of 64 per image
    assert len({tuple(m.tolist()) for m in mask}) == 6  # each image its own
    torch.manual_seed(5)
    assert torch.equal(loss.sample_mask(6, 64, torch.device('cpu')), mask)
    assert ViTKDLoss([4], [4], lambda_vitkd=1.0).sample_mask(2, 9, 'cpu').all()


def test_vitkd_under_bf16_autocast_is_float32_on_the_rounded_inputs(monkeypatch):
    loss, s_shapes, t_shapes = build_vitkd('deit_vs_resnet_maps', 1)
    mask = fixed_mask(2, 64, 3)
    monkeypatch.setattr(loss, 'sample_mask', lambda b, n, device: mask)
    students = [features(s, i).bfloat16().requires_grad_() for i, s in enumerate(s_shapes)]
    teachers = [features(t, 5 + i).bfloat16() for i, t in enumerate(t_shapes)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(students, teachers)
    grads = torch.autograd.grad(value, students)
    assert value.dtype == torch.float32 and grads[0].dtype == torch.bfloat16
    s32 = [x.detach().float().requires_grad_() for x in students]
    value32 = loss(s32, [t.float() for t in teachers])
    assert torch.equal(value, value32)
    grads32 = torch.autograd.grad(value32, s32)
    assert all(torch.equal(g, r.bfloat16()) for g, r in zip(grads, grads32))
    _, _, ref, ref_grads, _ = vitkd_case(loss, [x.detach().float() for x in students],
                                         [t.float() for t in teachers], mask, monkeypatch)
    assert_close(value, ref, 'bf16 value')
    for g, r in zip(grads32, ref_grads):
        assert_grads(g, r, 'bf16 gradient')


def test_vitkd_is_registered_and_binds_lists_of_sources():
    cfg = dict(type='ViTKDLoss', student_channels=[128, 128, 128],
               teacher_channels=[16, 32, 64], student_prefix_tokens=2)
    loss = MODELS.build(cfg)
    assert type(loss) is ViTKDLoss
    assert (loss.alpha_vitkd, loss.beta_vitkd, loss.lambda_vitkd) == (3e-5, 3e-6, 0.5)
    bound = bind_arguments('vitkd', loss, dict(
        student_features=['student.blocks.0', 'student.blocks.1', 'student.blocks.3'],
        teacher_features=['teacher.layer1', 'teacher.layer2', 'teacher.layer3']))
    assert [s.text for s in bound['student_features']] == [
        'student.blocks.0', 'student.blocks.1', 'student.blocks.3']
    students = [torch.randn(2, 66, 128) for _ in range(3)]
    teachers = [torch.randn(2, 16, 32, 32), torch.randn(2, 32, 16, 16),
                torch.randn(2, 64, 8, 8)]
    assert torch.isfinite(loss(tuple(students), teachers))


@pytest.mark.parametrize('kwargs,message', [
    (dict(student_channels=[], teacher_channels=[]), r'student_channels must be a non-empty'),
    (dict(student_channels=128, teacher_channels=[64]), r'student_channels must be'),
    (dict(student_channels=[128, 0], teacher_channels=[16, 32]), r'student_channels must'),
    (dict(student_channels=[128, 128], teacher_channels=[16]),
     r'student_channels \[128, 128\] and teacher_channels \[16\] must have the same'),
    (dict(student_channels=[8], teacher_channels=[8], alpha_vitkd=-1.0),
     r'alpha_vitkd must be a finite number >= 0, got -1\.0'),
    (dict(student_channels=[8], teacher_channels=[8], beta_vitkd=float('nan')),
     r'beta_vitkd must be a finite number >= 0'),
    (dict(student_channels=[8], teacher_channels=[8], lambda_vitkd=0.0),
     r'lambda_vitkd must be a finite number > 0'),
    (dict(student_channels=[8], teacher_channels=[8], lambda_vitkd=1.5),
     r'lambda_vitkd \(the masked fraction\) must be in \(0, 1\], got 1\.5'),
    (dict(student_channels=[8], teacher_channels=[8], student_prefix_tokens=-1),
     r'student_prefix_tokens must be an integer >= 0, got -1'),
    (dict(student_channels=[8], teacher_channels=[8], teacher_prefix_tokens=1.0),
     r'teacher_prefix_tokens must be an integer >= 0'),
])
def test_vitkd_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=r'ViTKDLoss: ' + message):
        ViTKDLoss(**kwargs)


def test_vitkd_rejects_bad_features():
    loss = ViTKDLoss([12, 12], [4, 8], student_prefix_tokens=2)
    s = [torch.randn(2, 66, 12), torch.randn(2, 66, 12)]
    t = [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8)]
    with pytest.raises(ValueError, match=r'student_features has 1 layers; the loss was built '
                                         r'for 2'):
        loss(s[:1], t[:1])
    with pytest.raises(ValueError, match=r'teacher_features must be a list of tensors'):
        loss(s, t[0])
    with pytest.raises(ValueError, match=r'teacher_features\[1\] has 6 channels, but '
                                         r'teacher_channels\[1\] is 8'):
        loss(s, [t[0], torch.randn(2, 6, 8, 8)])
    with pytest.raises(ValueError, match=r'student_features\[0\] has 10 channels'):
        loss([torch.randn(2, 66, 10), s[1]], t)
    with pytest.raises(ValueError, match=r'batch 2 and the teacher features batch 3'):
        loss(s, [t[0], torch.randn(3, 8, 8, 8)])
    with pytest.raises(ValueError, match=r'must be \(B, N, C\) tokens or a \(B, C, H, W\) '
                                         r'map, got \(2, 12\)'):
        loss([torch.randn(2, 12), s[1]], t)
    with pytest.raises(ValueError, match=r'student has 65 patch tokens and the teacher 64'):
        ViTKDLoss([12], [8], student_prefix_tokens=1)([s[0]], [t[1].flatten(2).mT])
    with pytest.raises(ValueError, match=r'has 2 tokens, not more than '
                                         r'student_prefix_tokens=2'):
        ViTKDLoss([12], [8], student_prefix_tokens=2)([torch.randn(2, 2, 12)], [t[1]])
    with pytest.raises(ValueError, match=r'do not form a square grid'):
        ViTKDLoss([12], [8])([torch.randn(2, 10, 12)], [torch.randn(2, 10, 8)])
    with pytest.raises(ValueError, match=r'sample_mask must return a bool \(2, 64\)'):
        bad = ViTKDLoss([12], [8], student_prefix_tokens=2)
        bad.sample_mask = lambda b, n, device: torch.ones(b, n)
        bad([s[0]], [t[1]])


# ----- manifold distillation ----------------------------------------------------------------
# (student shape, teacher shape, prefixes)
MANIFOLD_CASES = {
    'deit_vs_map_8x8': ((4, 66, 12), (4, 8, 8, 8), (2, 0)),
    'deit_vs_map_16x16': ((3, 66, 12), (3, 5, 16, 16), (2, 0)),
    'vit_vs_vit_tokens': ((5, 17, 6), (5, 17, 10), (1, 1)),
    'tokens_to_smaller_grid': ((3, 66, 6), (3, 17, 9), (2, 1)),
}


def manifold_case(loss, s, t, index, monkeypatch):
    monkeypatch.setattr(loss, 'sample_patches', lambda total, device: index.to(device))
    s32 = s.detach().clone().requires_grad_()
    value = loss(s32, t)
    (grad,) = torch.autograd.grad(value, s32)
    s64 = s.detach().double().requires_grad_()
    ref = ref_manifold(s64, t.double(), index, loss.alpha, loss.beta, loss.gamma,
                       loss.student_prefix_tokens, loss.teacher_prefix_tokens)
    (ref_grad,) = torch.autograd.grad(ref, s64)
    return value, grad, ref, ref_grad


def sample(total, k, seed):
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:k]


def teacher_tokens(shape, prefix):
    return math.prod(shape[-2:]) if len(shape) == 4 else shape[1] - prefix


@pytest.mark.parametrize('case', list(MANIFOLD_CASES))
@pytest.mark.parametrize('seed', [0, 1])
def test_manifold_matches_float64_reference(case, seed, monkeypatch):
    s_shape, t_shape, (sp, tp) = MANIFOLD_CASES[case]
    loss = ManifoldLoss(alpha=1.3, beta=0.7, gamma=0.4, num_patches=40,
                        student_prefix_tokens=sp, teacher_prefix_tokens=tp)
    s, t = features(s_shape, seed), features(t_shape, seed + 50)
    index = sample(s_shape[0] * teacher_tokens(t_shape, tp), 40, seed)
    value, grad, ref, ref_grad = manifold_case(loss, s, t, index, monkeypatch)
    assert value.dtype == torch.float32
    assert_close(value, ref, f'{case} value')
    assert_grads(grad, ref_grad, f'{case} gradient')


def test_manifold_terms_are_weighted_separately(monkeypatch):
    """Each weight multiplies its own term: one term at a time against the reference."""
    s_shape, t_shape, (sp, tp) = MANIFOLD_CASES['deit_vs_map_8x8']
    s, t = features(s_shape, 7), features(t_shape, 8)
    index = sample(4 * 64, 30, 1)
    for weights in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)):
        loss = ManifoldLoss(*weights, num_patches=30, student_prefix_tokens=sp)
        value, grad, ref, ref_grad = manifold_case(loss, s, t, index, monkeypatch)
        assert_close(value, ref, f'weights {weights}')
        assert_grads(grad, ref_grad, f'weights {weights} gradient')


@pytest.mark.parametrize('kind', ['large', 'near_constant'])
def test_manifold_extreme_student_features_match_float64(kind, monkeypatch):
    loss = ManifoldLoss(student_prefix_tokens=2, num_patches=50)
    s, t = features((3, 66, 12), 3, kind), features((3, 8, 8, 8), 4)
    value, grad, ref, ref_grad = manifold_case(loss, s, t, sample(192, 50, 2), monkeypatch)
    assert_close(value, ref, f'{kind} value')
    # Near-constant tokens are nearly parallel: the gradient is the component of the
    # relations' gradient orthogonal to each unit token, a difference of nearly equal
    # terms, whose float32 rounding (and that of the unit tokens themselves, which differ
    # by 1e-6) leaves an error of a few 1e-7 of those terms (|dL/du| / |x|; 5e-7 here,
    # where the true gradient is 3e-6 of them). Its floor: 2e-6 of those terms, next to
    # 1e-5 of its own largest entry.
    floor = 0.0
    if kind == 'near_constant':
        floor = 2e-6 * terms_scale(loss, s, t, sample(192, 50, 2))
    assert_grads(grad, ref_grad, f'{kind} gradient', floor=floor)


def terms_scale(loss, s, t, index):
    """max over patch tokens of |dL/du| / |x|: the size of the terms of the gradient with
    respect to x, which the normalisation's derivative takes the difference of."""
    s64 = s.double()[:, loss.student_prefix_tokens:]
    norms = s64.norm(dim=-1, keepdim=True)
    u = (s64 / norms).requires_grad_()
    ref = ref_manifold(u, t.double(), index, loss.alpha, loss.beta, loss.gamma,
                       0, loss.teacher_prefix_tokens, unit_student=False)
    (gu,) = torch.autograd.grad(ref, u)
    return (gu.abs() / norms).max().item()


def test_manifold_both_near_constant_is_finite_and_small(monkeypatch):
    """Both sides nearly constant: every relation is 1 to ~1e-12, so the loss is a sum of
    squares of float32 rounding (cosines known to ~1e-7): finite, and within that of 0."""
    loss = ManifoldLoss(student_prefix_tokens=2)
    s, t = features((3, 66, 12), 3, 'near_constant'), features((3, 8, 8, 8), 4,
                                                                   'near_constant')
    value, grad, ref, _ = manifold_case(loss, s, t, sample(192, 100, 2), monkeypatch)
    assert torch.isfinite(grad).all()
    assert ref < 1e-20 and 0 <= value < (loss.alpha + loss.beta + loss.gamma) * 1e-12


def test_manifold_zero_tokens_stay_finite(monkeypatch):
    loss = ManifoldLoss(student_prefix_tokens=2, num_patches=30)
    s, t = features((3, 66, 12), 3), features((3, 8, 8, 8), 4)
    s[:, 2:10] = 0
    t[:, :, 0] = 0  # a row of all-zero teacher tokens
    value, grad, ref, ref_grad = manifold_case(loss, s, t, sample(192, 30, 1), monkeypatch)
    assert torch.isfinite(grad).all()
    assert_close(value, ref, 'zero tokens value')


def test_manifold_prefix_tokens_do_not_matter(monkeypatch):
    loss = ManifoldLoss(student_prefix_tokens=2, teacher_prefix_tokens=1, num_patches=20)
    monkeypatch.setattr(loss, 'sample_patches', lambda total, device: sample(total, 20, 0))
    s, t = features((3, 66, 6), 1), features((3, 65, 9), 2)
    before = loss(s, t)
    s[:, :2], t[:, :1] = 1e3, -1e3
    assert torch.equal(loss(s, t), before)


def test_manifold_sample_patches_uses_the_global_generator():
    loss = ManifoldLoss(num_patches=192)
    torch.manual_seed(3)
    index = loss.sample_patches(1000, torch.device('cpu'))
    assert index.shape == (192,) and len(set(index.tolist())) == 192
    assert 0 <= index.min() and index.max() < 1000
    torch.manual_seed(3)
    assert torch.equal(loss.sample_patches(1000, torch.device('cpu')), index)
    assert sorted(loss.sample_patches(50, torch.device('cpu')).tolist()) == list(range(50))


def test_manifold_with_fewer_patches_than_k_uses_them_all(monkeypatch):
    loss = ManifoldLoss(student_prefix_tokens=1, teacher_prefix_tokens=1)  # K = 192
    s, t = features((2, 10, 6), 0), features((2, 10, 9), 1)
    torch.manual_seed(0)
    value = loss(s, t)
    ref = ref_manifold(s.double(), t.double(), torch.arange(18), loss.alpha, loss.beta,
                       loss.gamma, 1, 1)  # the set, not the order, matters
    assert_close(value, ref, 'all patches')


def test_manifold_under_bf16_autocast_is_float32_on_the_rounded_inputs(monkeypatch):
    loss = ManifoldLoss(student_prefix_tokens=2, num_patches=60)
    index = sample(3 * 256, 60, 0)
    monkeypatch.setattr(loss, 'sample_patches', lambda total, device: index)
    s = features((3, 66, 12), 0).bfloat16().requires_grad_()
    t = features((3, 5, 16, 16), 1).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(s, t)
    (grad,) = torch.autograd.grad(value, s)
    assert value.dtype == torch.float32 and grad.dtype == torch.bfloat16
    s32 = s.detach().float().requires_grad_()
    value32 = loss(s32, t.float())
    (grad32,) = torch.autograd.grad(value32, s32)
    assert torch.equal(value, value32) and torch.equal(grad, grad32.bfloat16())
    _, _, ref, ref_grad = manifold_case(loss, s.detach().float(), t.float(), index,
                                        monkeypatch)
    assert_close(value, ref, 'bf16 value')
    assert_grads(grad32, ref_grad, 'bf16 gradient')


def test_manifold_is_registered_with_the_released_defaults():
    loss = MODELS.build(dict(type='ManifoldLoss', student_prefix_tokens=2))
    assert type(loss) is ManifoldLoss
    assert (loss.alpha, loss.beta, loss.gamma, loss.num_patches) == (4.0, 0.1, 0.2, 192)
    assert list(loss.parameters()) == []
    bound = bind_arguments('manifold', loss, dict(student_features='student.blocks.3',
                                                  teacher_features='teacher.layer3'))
    assert bound['student_features'].text == 'student.blocks.3'


@pytest.mark.parametrize('kwargs,message', [
    (dict(alpha=-1.0), r'alpha must be a finite number >= 0, got -1\.0'),
    (dict(beta=float('inf')), r'beta must be a finite number >= 0'),
    (dict(gamma='1'), r'gamma must be a finite number >= 0'),
    (dict(num_patches=0), r'num_patches must be an integer >= 1, got 0'),
    (dict(num_patches=True), r'num_patches must be an integer >= 1, got True'),
    (dict(student_prefix_tokens=-2), r'student_prefix_tokens must be an integer >= 0'),
    (dict(eps=0.0), r'eps must be a finite number > 0, got 0\.0'),
])
def test_manifold_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=r'ManifoldLoss: ' + message):
        ManifoldLoss(**kwargs)


def test_manifold_rejects_bad_features():
    loss = ManifoldLoss(student_prefix_tokens=2)
    with pytest.raises(ValueError, match=r'batch 3 and the teacher features batch 2'):
        loss(torch.randn(3, 66, 12), torch.randn(2, 8, 8, 8))
    with pytest.raises(ValueError, match=r'student_features must be floating point'):
        loss(torch.ones(3, 66, 12, dtype=torch.long), torch.randn(3, 8, 8, 8))
    with pytest.raises(ValueError, match=r'teacher_features must be \(B, N, C\) tokens'):
        loss(torch.randn(3, 66, 12), [torch.randn(3, 8, 8, 8)])
    with pytest.raises(ValueError, match=r'student has 65 patch tokens and the teacher 64'):
        ManifoldLoss(student_prefix_tokens=1)(torch.randn(3, 66, 12),
                                              torch.randn(3, 64, 12))


def test_both_losses_detach_the_teacher():
    """A teacher tensor that requires grad gets none: the losses detach it themselves."""
    s = features((2, 66, 12), 0).requires_grad_()
    t = features((2, 8, 8, 8), 1).requires_grad_()
    torch.manual_seed(0)
    (ViTKDLoss([12], [8], student_prefix_tokens=2)([s], [t])
     + ManifoldLoss(student_prefix_tokens=2)(s, t)).backward()
    assert t.grad is None and s.grad is not None
