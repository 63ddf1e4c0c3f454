"""DeepInversionSynthesizer on a tiny CifarResNet: the teacher's cross-entropy on the
targets drops, every regulariser (BatchNorm statistics, image priors, intra-divergence)
is optimised and not only logged, stages change the resolution, runs are reproducible per
batch, the teacher is left untouched, and the bf16 path runs."""
import pytest
import torch

from conftest import tiny_resnet
from kdzoo.losses.bn_statistics import BNStatisticsLoss
from kdzoo.losses.image_prior import ImagePriorLoss
from kdzoo.registry import MODELS
from kdzoo.synthesis import DeepInversionSynthesizer, batch_seed

torch.set_num_threads(1)
CIFAR_MEAN = [125.307, 122.961, 113.8575]
CIFAR_STD = [51.5865, 50.847, 51.255]


@pytest.fixture(scope='module')
def teacher():
    """A random tiny ResNet with BatchNorm statistics of random images and a scaled
    classifier, so that its logits react to the input as a trained network's do."""
    torch.manual_seed(0)
    net = MODELS.build(tiny_resnet()).train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, 3, 16, 16))
        net.fc.weight.mul_(20.0)
    return net.eval()


def synthesizer(**kw):
    cfg = dict(type='DeepInversionSynthesizer', stages=[dict(size=16, iterations=4)],
               mean=CIFAR_MEAN, std=CIFAR_STD, lr=0.1, jitter=1, flip=True,
               diversity=dict(type='IntraDivergenceLoss'), feature_layer='fc', seed=3)
    cfg.update(kw)
    return MODELS.build(cfg)


LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


def test_synthesis_lowers_the_teachers_cross_entropy(teacher):
    # No jitter or flips: unlike a trained network, this random one is not invariant to
    # them, which would only add noise to a short run.
    kw = dict(jitter=0, flip=False)
    start = synthesizer(stages=[dict(size=16, iterations=0)], **kw).synthesize(
        teacher, LABELS, 0)
    end = synthesizer(stages=[dict(size=16, iterations=10)], **kw).synthesize(
        teacher, LABELS, 0)
    # the same seed and batch index: iteration 0 is the starting noise of the longer run
    assert end.losses['ce'].mean() < 0.75 * start.losses['ce'].mean()
    assert end.losses['total'].mean() < start.losses['total'].mean()
    assert len(end.history) == 10 and start.history == []
    assert end.losses['target_prob'].mean() > start.losses['target_prob'].mean()


# Each regulariser alone on top of the cross-entropy, at a weight that shows in 15 steps.
TERM_ON = {'bn': dict(alpha_bn=0.5),
           'prior': dict(alpha_tv=0.3, alpha_l2=0.05),
           'diversity': dict(diversity=dict(type='IntraDivergenceLoss'))}
NO_TERM = dict(alpha_bn=0.0, alpha_tv=0.0, alpha_l2=0.0, diversity=None, jitter=0,
               flip=False, stages=[dict(size=16, iterations=15)])


def term_value(teacher, term, images):
    """The unweighted value of ``term`` on uint8 images (read back into the teacher's
    input space), whatever the synthesizer that made them optimised."""
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    x = (images.float() - mean) / std
    if term == 'prior':
        return float(ImagePriorLoss(**{'tv_l2_weight': 0.3, 'l2_weight': 0.05})(x).mean())
    bn, features = BNStatisticsLoss(), []
    handle = teacher.fc.register_forward_pre_hook(lambda m, i: features.append(i[0]))
    try:
        with torch.no_grad(), bn.attached(teacher):
            teacher(x)
            value = bn()
    finally:
        handle.remove()
    if term == 'bn':
        return float(value)
    return float(MODELS.build(dict(type='IntraDivergenceLoss'))(features[0].flatten(1),
                                                                LABELS))


@pytest.mark.parametrize('term', list(TERM_ON))
def test_each_term_falls_against_a_run_without_it(teacher, term):
    """Same seed, same start: the run that optimises the term ends with a clearly lower
    value of it than the run without it (a term that is only logged would leave the
    images, and so its value, exactly those of the run without it)."""
    without = synthesizer(**NO_TERM).synthesize(teacher, LABELS, 0)
    with_term = synthesizer(**dict(NO_TERM, **TERM_ON[term])).synthesize(teacher, LABELS, 0)
    assert term_value(teacher, term, with_term.images) < 0.8 * term_value(
        teacher, term, without.images)


@pytest.mark.parametrize('term', list(TERM_ON))
def test_each_terms_gradient_reaches_the_images(teacher, term):
    """The objective's gradient with the term is the gradient without it plus the
    term's own (its batch mean), and that is not zero."""
    torch.manual_seed(1)
    x0 = torch.randn(len(LABELS), 3, 16, 16)

    def objective(syn):
        x = x0.clone().requires_grad_(True)
        handle = teacher.fc.register_forward_pre_hook(syn._record_features)
        try:
            with syn.bn_loss.attached(teacher):
                out = syn._objective(teacher, x, x, LABELS)
        finally:
            handle.remove()
        return x, out

    x_off, off = objective(synthesizer(**NO_TERM))
    x, on = objective(synthesizer(**dict(NO_TERM, **TERM_ON[term])))
    assert on[term].requires_grad, f'{term} is cut from the graph'
    (g_off,) = torch.autograd.grad(off['loss'], [x_off])
    (g_on,) = torch.autograd.grad(on['loss'], [x], retain_graph=True)
    (g_term,) = torch.autograd.grad(on[term].mean(), [x])
    assert g_term.abs().sum() > 0
    assert torch.allclose(g_on - g_off, g_term, atol=1e-6, rtol=1e-4)


def test_stages_upsample_to_the_last_size_and_images_are_uint8(teacher):
    syn = synthesizer(stages=[dict(size=8, iterations=2, jitter=1),
                              dict(size=16, iterations=1, jitter=2)])
    result = syn.synthesize(teacher, LABELS, batch_index=1)
    assert result.images.shape == (6, 3, 16, 16) and result.images.dtype == torch.uint8
    assert len(result.history) == 3
    assert set(result.losses) == {'ce', 'prior', 'bn', 'diversity', 'total', 'target_prob',
                                  'prediction'}
    assert all(v.shape == (6,) for v in result.losses.values())
    parts = (result.losses['ce'] + result.losses['prior'] + result.losses['bn']
             + result.losses['diversity'])
    assert torch.allclose(result.losses['total'], parts, atol=1e-5)


def test_batches_are_reproducible_and_differ_from_each_other(teacher):
    a = synthesizer().synthesize(teacher, LABELS, batch_index=5)
    b = synthesizer().synthesize(teacher, LABELS, batch_index=5)
    c = synthesizer().synthesize(teacher, LABELS, batch_index=6)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    assert batch_seed(0, 1) != batch_seed(1, 0)


def test_the_teacher_is_untouched(teacher):
    net = MODELS.build(tiny_resnet()).train()  # in train mode, as a careless caller might
    state = {k: v.clone() for k, v in net.state_dict().items()}
    synthesizer().synthesize(net, LABELS)
    assert net.training  # mode restored
    assert all(p.grad is None for p in net.parameters())
    for k, v in net.state_dict().items():  # BatchNorm statistics did not move
        assert torch.equal(v, state[k]), k
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_a_kdzoo_teacher_is_accepted(teacher):
    wrapped = MODELS.build(dict(type='Teacher', random_init=True, model=tiny_resnet()))
    wrapped.model.load_state_dict(teacher.state_dict())
    direct = synthesizer().synthesize(teacher, LABELS, 2)
    via = synthesizer().synthesize(wrapped, LABELS, 2)
    assert torch.equal(direct.images, via.images)


def test_bf16_autocast_runs(teacher):
    syn = synthesizer(stages=[dict(size=8, iterations=1), dict(size=16, iterations=1)],
                      bf16=True)
    seen = []
    handle = teacher.fc.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        result = syn.synthesize(teacher, LABELS)
    finally:
        handle.remove()
    assert torch.bfloat16 in seen
    assert result.images.shape == (6, 3, 16, 16)
    assert torch.isfinite(result.losses['total']).all()


def test_a_channels_last_teacher_gets_channels_last_inputs(teacher):
    """Teacher(channels_last=True): the synthesizer hands it channels-last images (no
    layout conversion inside the network) and makes the same images up to rounding."""
    wrapped = {}
    for cl in (False, True):
        wrapped[cl] = MODELS.build(dict(type='Teacher', random_init=True, model=tiny_resnet(),
                                        channels_last=cl))
        wrapped[cl].model.load_state_dict(teacher.state_dict())
    layouts = []
    conv = next(m for m in wrapped[True].model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_pre_hook(lambda m, args: layouts.append(
        args[0].is_contiguous(memory_format=torch.channels_last)))
    try:
        fast = synthesizer().synthesize(wrapped[True], LABELS, 2)
    finally:
        handle.remove()
    assert layouts and all(layouts)
    plain = synthesizer().synthesize(wrapped[False], LABELS, 2)
    assert (fast.images.int() - plain.images.int()).abs().max() <= 1
    assert torch.allclose(fast.losses['total'], plain.losses['total'], rtol=1e-3)


@pytest.mark.parametrize('stages,match', [
    ([], 'non-empty'),
    ([dict(size=16, iterations=1), dict(size=8, iterations=1)], 'previous'),
    ([dict(size=16)], 'needs size and iterations'),
    ([dict(size=16, iterations=-1)], 'non-negative'),
    ([dict(size=16, iterations=1, jitter=16)], 'jitter'),
])
def test_bad_stages_are_refused(stages, match):
    with pytest.raises(ValueError, match=match):
        DeepInversionSynthesizer(stages, CIFAR_MEAN, CIFAR_STD)


def test_diversity_needs_a_feature_layer():
    with pytest.raises(ValueError, match='feature_layer'):
        DeepInversionSynthesizer([dict(size=8, iterations=1)], CIFAR_MEAN, CIFAR_STD,
                                 diversity=dict(type='IntraDivergenceLoss'))
