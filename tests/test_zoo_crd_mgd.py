"""CRD (Tian et al., ICLR 2020) and MGD (Yang et al., ECCV 2022) against float64
evaluations written from their papers' equations, and their state: CRD's memory banks and
normalisation constant (update, checkpoints, two-process data parallelism).

The references are written independently of kdzoo's code: CRD's critic is evaluated with
plain probabilities, ``P = exp(score / tau) / Z``, ``h = P / (P + N / M)`` and
``log(1 - h)`` of that (kdzoo works in log space), one sample at a time; MGD's generation
block with ``torch.nn.functional.conv2d`` in float64 on weights copied from the module,
the student aligned *before* it is resized (kdzoo resizes first; the two commute), tokens
put on their grid one position at a time. The randomness of both losses (CRD's negatives,
MGD's mask) is injected by replacing ``sample_negatives`` / ``sample_mask`` on the
instance.
"""
import math
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from kdzoo.losses.crd import CRDLoss
from kdzoo.losses.mgd import MGDLoss
from kdzoo.registry import MODELS

RTOL = 1e-5
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----- comparison ---------------------------------------------------------------------------
def assert_close(got, expected, what, rtol=RTOL):
    """Each entry within rtol of the float64 value, or within rtol * the largest |entry|
    (gradient entries that cancel to near 0); everything finite."""
    got, expected = got.detach().double(), expected.detach().double()
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    assert torch.isfinite(got).all(), f'{what}: not finite'
    err = (got - expected).abs()
    bound = rtol * expected.abs() + rtol * expected.abs().max() + 1e-30
    worst = (err - bound).argmax()
    assert (err <= bound).all(), (f'{what}: {got.flatten()[worst].item()!r} vs '
                                  f'{expected.flatten()[worst].item()!r} (error '
                                  f'{err.flatten()[worst].item():.3g})')


def leaf64(t):
    return t.detach().double().clone().requires_grad_()


# ----- CRD: float64 reference ---------------------------------------------------------------
def ref_pool(x, prefix):
    """One (C,) vector per sample: a map's mean over its positions, a vector as it is,
    tokens' mean over those after the first ``prefix``."""
    rows = []
    for sample in x:
        if sample.dim() == 3:  # (C, H, W)
            rows.append(sample.reshape(sample.shape[0], -1).sum(dim=1)
                        / (sample.shape[1] * sample.shape[2]))
        elif sample.dim() == 2:  # (N, C)
            kept = sample[prefix:]
            rows.append(kept.sum(dim=0) / kept.shape[0])
        else:
            rows.append(sample)
    return torch.stack(rows)


def ref_embed(x, weight, bias, prefix):
    """g(x) = (W x + b) / |W x + b|, one sample at a time."""
    out = []
    for v in ref_pool(x, prefix):
        e = weight @ v + bias
        out.append(e / torch.sqrt((e * e).sum()))
    return torch.stack(out)


def ref_z(anchors, bank, indices, negatives, tau, m):
    """Z = M * mean of exp(g . row / tau) over the batch's positives and negatives."""
    values = []
    for a, i, negs in zip(anchors, indices.tolist(), negatives):
        values.append(torch.exp(bank[i] @ a / tau).reshape(1))
        values.append(torch.exp(bank[negs] @ a / tau))
    return m * torch.cat(values).mean()


def ref_side(anchors, bank, indices, negatives, tau, m, z):
    """-(1/B) sum_i [log h(pos_i) + sum_k log(1 - h(neg_ik))], h = P / (P + N/M),
    P = exp(g . row / tau) / Z (Tian et al. 2020, eqs. 18-19 with the reference's Z)."""
    n = negatives.shape[1]
    noise = n / m
    total = 0
    for a, i, negs in zip(anchors, indices.tolist(), negatives):
        p = torch.exp(bank[i] @ a / tau) / z
        total = total - torch.log(p / (p + noise))
        p_neg = torch.exp(bank[negs] @ a / tau) / z
        total = total - torch.log(1 - p_neg / (p_neg + noise)).sum()
    return total / len(indices)


def ref_crd(loss, fs, ft, indices, negatives, banks, log_z=None):
    """The CRD loss in float64 from ``loss``'s heads (leaf copies, returned for their
    gradients), the banks ``(student bank, teacher bank)`` before the step, and Z
    (estimated from this batch without gradient when ``log_z`` is None)."""
    prefix_s, prefix_t = loss.prefix_tokens
    w = {k: leaf64(v) for k, v in loss.named_parameters()}
    g_s = ref_embed(fs, w['embed_student.weight'], w['embed_student.bias'], prefix_s)
    g_t = ref_embed(ft.detach(), w['embed_teacher.weight'], w['embed_teacher.bias'], prefix_t)
    bank_s, bank_t = (b.double() for b in banks)
    tau, m = loss.temperature, loss.num_samples
    if log_z is None:
        with torch.no_grad():
            z_s = ref_z(g_s, bank_t, indices, negatives, tau, m)
            z_t = ref_z(g_t, bank_s, indices, negatives, tau, m)
    else:
        z_s, z_t = log_z.double().exp()
    value = (ref_side(g_s, bank_t, indices, negatives, tau, m, z_s)
             + ref_side(g_t, bank_s, indices, negatives, tau, m, z_t))
    return value, w, (g_s.detach(), g_t.detach()), torch.stack([z_s, z_t]).log()


def ref_update(bank, indices, embeddings, momentum):
    """Each index's row <- normalise(momentum * row + (1 - momentum) * embedding), in
    order, so that a repeated index ends with its last embedding mixed into the old row."""
    new = bank.double().clone()
    last = {}
    for pos, i in enumerate(indices.tolist()):
        last[i] = pos
    for i, pos in last.items():
        v = momentum * bank[i].double() + (1 - momentum) * embeddings[pos]
        new[i] = v / torch.sqrt((v * v).sum())
    return new


def make_features(kind, batch, channels, seed, scale=1.0, constant=False):
    g = torch.Generator().manual_seed(seed)
    shape = {'map': (batch, channels, 3, 5), 'vector': (batch, channels),
             'tokens': (batch, 6, channels)}[kind]
    x = torch.randn(shape, generator=g)
    if constant:  # every sample equal, plus 1e-6 noise
        x = x[:1].expand(shape).clone() + 1e-6 * torch.randn(shape, generator=g)
    return x * scale


def fixed_negatives(loss, indices, seed):
    """Negatives other than each sample's own index, from a generator of the test."""
    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, loss.num_samples - 1, (len(indices), loss.num_negatives),
                          generator=g)
    return draws + (draws >= indices[:, None]).long()


def crd_step(loss, fs, ft, indices, negatives):
    """loss's value and gradients (student features, both heads' weights) of one step."""
    fs = fs.detach().clone().requires_grad_()
    loss.sample_negatives = lambda idx: negatives
    value = loss(fs, ft, indices)
    grads = torch.autograd.grad(value, (fs, loss.embed_student.weight,
                                        loss.embed_teacher.weight))
    return value.detach(), grads


def ref_step(loss, fs, ft, indices, negatives, banks, log_z=None):
    fs64 = leaf64(fs)
    value, w, emb, ref_log_z = ref_crd(loss, fs64, ft.double(), indices, negatives, banks,
                                       log_z)
    grads = torch.autograd.grad(value, (fs64, w['embed_student.weight'],
                                        w['embed_teacher.weight']))
    return value.detach(), grads, emb, ref_log_z


# (num_samples, num_negatives, feat_dim): the first scores the whole bank, the second
# gathers the negatives' rows.
CRD_SIZES = [(40, 16, 8), (300, 8, 4)]


@pytest.mark.parametrize('sizes', CRD_SIZES, ids=['whole_bank', 'gathered_rows'])
@pytest.mark.parametrize('kind', ['map', 'vector', 'tokens'])
@pytest.mark.parametrize('seed', [0, 1])
def test_crd_matches_float64_reference(sizes, kind, seed):
    """Two training steps: Z estimated on the first and kept for the second; values and
    gradients of the loss against the float64 reference on the banks before each step,
    and the banks after each step against the reference update."""
    m, n, d = sizes
    torch.manual_seed(seed)
    loss = CRDLoss(m, 6, 5, feat_dim=d, num_negatives=n, temperature=0.1, momentum=0.3,
                   num_prefix_tokens=2 if kind == 'tokens' else 0)
    log_z = None
    for step in range(2):
        fs = make_features(kind, 5, 6, seed * 10 + step)
        ft = make_features(kind, 5, 5, seed * 10 + step + 100)
        indices = torch.randperm(m)[:5]
        negatives = fixed_negatives(loss, indices, seed + step)
        banks = (loss.memory_student.clone(), loss.memory_teacher.clone())
        value, grads = crd_step(loss, fs, ft, indices, negatives)
        ref_value, ref_grads, (g_s, g_t), ref_log_z = ref_step(loss, fs, ft, indices,
                                                              negatives, banks, log_z)
        assert_close(value, ref_value, f'step {step} loss')
        for name, g, rg in zip(('student features', 'student head', 'teacher head'),
                               grads, ref_grads):
            assert_close(g, rg, f'step {step} gradient of the {name}')
        assert_close(loss.log_z, ref_log_z, f'step {step} log Z')
        assert_close(loss.memory_student, ref_update(banks[0], indices, g_s, 0.3),
                     f'step {step} student bank')
        assert_close(loss.memory_teacher, ref_update(banks[1], indices, g_t, 0.3),
                     f'step {step} teacher bank')
        log_z = loss.log_z.clone()


@pytest.mark.parametrize('case', ['scaled_1e4', 'near_constant', 'both'])
def test_crd_extreme_features(case):
    """Features of 1e4 and all-equal features (+1e-6 noise): finite, and as the float64
    reference (the embeddings are normalised, so neither is hard)."""
    torch.manual_seed(3)
    loss = CRDLoss(50, 7, 4, feat_dim=8, num_negatives=16)
    scale = 1e4 if case != 'near_constant' else 1.0
    constant = case != 'scaled_1e4'
    fs = make_features('map', 6, 7, 5, scale, constant)
    ft = make_features('map', 6, 4, 6, scale, constant)
    indices = torch.arange(6) * 7
    negatives = fixed_negatives(loss, indices, 2)
    banks = (loss.memory_student.clone(), loss.memory_teacher.clone())
    value, grads = crd_step(loss, fs, ft, indices, negatives)
    ref_value, ref_grads, _, _ = ref_step(loss, fs, ft, indices, negatives, banks)
    assert_close(value, ref_value, 'loss')
    for g, rg in zip(grads, ref_grads):
        assert_close(g, rg, 'gradient')
    assert torch.isfinite(loss.memory_student).all() and torch.isfinite(loss.memory_teacher).all()


def test_crd_bf16_autocast():
    """bf16 features under bf16 autocast: a float32 loss, as the float64 reference on the
    bf16-rounded features."""
    torch.manual_seed(4)
    loss = CRDLoss(60, 8, 8, feat_dim=8, num_negatives=16, num_prefix_tokens=1)
    fs = make_features('tokens', 4, 8, 7).bfloat16()
    ft = make_features('tokens', 4, 8, 8).bfloat16()
    indices = torch.tensor([3, 59, 0, 17])
    negatives = fixed_negatives(loss, indices, 1)
    banks = (loss.memory_student.clone(), loss.memory_teacher.clone())
    loss.sample_negatives = lambda idx: negatives
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(fs, ft, indices)
    assert value.dtype == torch.float32
    assert loss.memory_student.dtype == torch.float32 and loss.log_z.dtype == torch.float32
    ref_value = ref_crd(loss, fs.double(), ft.double(), indices, negatives, banks)[0]
    assert_close(value, ref_value, 'bf16 loss')


def test_crd_bank_update_after_loss_and_only_in_training():
    """The loss reads the banks as they were before the step (a second evaluation of the
    same batch differs); rows outside the batch do not change; a repeated index keeps its
    last occurrence; in eval mode nothing changes."""
    torch.manual_seed(5)
    loss = CRDLoss(20, 3, 3, feat_dim=4, num_negatives=5, momentum=0.5)
    fs, ft = torch.randn(4, 3), torch.randn(4, 3)
    indices = torch.tensor([2, 9, 2, 11])
    negatives = fixed_negatives(loss, indices, 0)
    loss.sample_negatives = lambda idx: negatives
    before = (loss.memory_student.clone(), loss.memory_teacher.clone())
    loss.eval()
    first = loss(fs, ft, indices)
    assert torch.equal(loss.memory_student, before[0])
    assert torch.equal(loss.memory_teacher, before[1])
    assert torch.isfinite(loss.log_z).all()  # Z is estimated in eval mode too
    loss.train()
    second = loss(fs, ft, indices)
    assert torch.equal(first, second)  # the update comes after the loss
    third = loss(fs, ft, indices)
    assert not torch.allclose(second, third)
    with torch.no_grad():
        g_s = F.normalize(loss.embed_student(fs), dim=1).double()
        g_t = F.normalize(loss.embed_teacher(ft), dim=1).double()
    outside = torch.ones(20, dtype=torch.bool)
    outside[indices] = False
    for bank, old, emb in ((loss.memory_student, before[0], g_s),
                           (loss.memory_teacher, before[1], g_t)):
        assert torch.equal(bank[outside], old[outside])
        once = ref_update(old, indices, emb, 0.5)
        twice = ref_update(once, indices, emb, 0.5)
        assert_close(bank, twice, 'bank after two steps')
    # Rows stay of unit norm.
    assert_close(loss.memory_student[indices].norm(dim=1), torch.ones(4), 'row norms')


def test_crd_bank_initialisation():
    """Uniform in [-a, a], a = 1 / sqrt(feat_dim / 3) (the reference's), from torch's
    global generator; Z not yet set."""
    torch.manual_seed(6)
    loss = CRDLoss(2000, 3, 3, feat_dim=12)
    a = 1 / math.sqrt(12 / 3)
    for bank in (loss.memory_student, loss.memory_teacher):
        assert bank.shape == (2000, 12)
        assert bank.min() >= -a and bank.max() <= a
        assert abs(bank.mean().item()) < 0.01
        assert abs(bank.square().mean().item() - a * a / 3) < 0.01 * a * a
    assert not torch.equal(loss.memory_student, loss.memory_teacher)
    assert torch.isnan(loss.log_z).all()
    torch.manual_seed(6)
    again = CRDLoss(2000, 3, 3, feat_dim=12)
    assert torch.equal(again.memory_teacher, loss.memory_teacher)


def test_crd_sample_negatives():
    """Uniform over the indices other than each sample's own, from torch's global
    generator."""
    loss = CRDLoss(5, 2, 2, feat_dim=2, num_negatives=4000)
    indices = torch.tensor([0, 2, 4])
    torch.manual_seed(0)
    negatives = loss.sample_negatives(indices)
    assert negatives.shape == (3, 4000) and negatives.dtype == torch.int64
    for row, i in zip(negatives, indices.tolist()):
        counts = torch.bincount(row, minlength=5)
        assert counts[i] == 0
        others = counts[torch.arange(5) != i].double()
        assert ((others - 1000).abs() < 150).all(), counts
    torch.manual_seed(0)
    assert torch.equal(loss.sample_negatives(indices), negatives)


def test_crd_state_dict_round_trip():
    """Banks, Z and heads are saved and strictly loaded into a fresh module, which then
    computes the same loss; a module whose Z is set and that is given an unset one
    estimates Z again."""
    torch.manual_seed(7)
    loss = CRDLoss(30, 4, 6, feat_dim=5, num_negatives=7)
    for step in range(3):
        idx = torch.randperm(30)[:4]
        loss.sample_negatives = lambda i: fixed_negatives(loss, i, step)
        loss(torch.randn(4, 4), torch.randn(4, 6), idx).backward()
    state = loss.state_dict()
    assert {'memory_student', 'memory_teacher', 'log_z'} <= set(state)
    assert torch.isfinite(state['log_z']).all()
    torch.manual_seed(99)
    fresh = CRDLoss(30, 4, 6, feat_dim=5, num_negatives=7)
    assert not torch.equal(fresh.memory_student, loss.memory_student)
    fresh.load_state_dict(state, strict=True)
    for key, value in loss.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    fs, ft, idx = torch.randn(4, 4), torch.randn(4, 6), torch.tensor([1, 5, 9, 29])
    negatives = fixed_negatives(loss, idx, 11)
    for module in (loss, fresh):
        module.sample_negatives = lambda i: negatives
    assert torch.equal(loss(fs, ft, idx), fresh(fs, ft, idx))
    assert torch.equal(loss.memory_teacher, fresh.memory_teacher)
    # An unset Z loaded into a module that had set its own: estimated again.
    unset = CRDLoss(30, 4, 6, feat_dim=5, num_negatives=7).state_dict()
    loss.load_state_dict(unset)
    assert torch.isnan(loss.log_z).all()
    loss(fs, ft, idx)
    banks = (unset['memory_student'], unset['memory_teacher'])
    expected = ref_crd(loss, fs.double(), ft.double(), idx, negatives, banks)[3]
    assert_close(loss.log_z, expected, 'log Z estimated after loading')


def test_crd_bank_size_mismatch_fails_strict_load():
    small = CRDLoss(99, 4, 4, feat_dim=5, num_negatives=3)
    big = CRDLoss(100, 4, 4, feat_dim=5, num_negatives=3)
    with pytest.raises(RuntimeError, match='memory_student.*size mismatch|size mismatch'
                                            '.*memory_student'):
        small.load_state_dict(big.state_dict(), strict=True)


@pytest.mark.parametrize('indices, pattern', [
    (torch.tensor([0, 30]), r'dataset index 30 is out of range \[0, 29\].*num_samples \(30\) '
                            r"must be the training set's size"),
    (torch.tensor([-1, 3]), r'dataset index -1 is out of range'),
    (torch.tensor([0.0, 1.0]), 'integer dataset indices'),
    (torch.tensor([[0, 1]]), r'of shape \(2,\)'),
    (torch.tensor([0, 1, 2]), r'of shape \(2,\)'),
])
def test_crd_bad_indices(indices, pattern):
    loss = CRDLoss(30, 4, 4, feat_dim=5, num_negatives=3)
    with pytest.raises(ValueError, match=pattern):
        loss(torch.randn(2, 4), torch.randn(2, 4), indices)


def test_crd_bad_features():
    loss = CRDLoss(30, 4, 6, feat_dim=5, num_negatives=3, num_prefix_tokens=(1, 0))
    idx = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r'student features \(2, 5\) have 5 channels but '
                                         'student_channels=4'):
        loss(torch.randn(2, 5), torch.randn(2, 6), idx)
    with pytest.raises(ValueError, match='teacher features .* have 4 channels but '
                                         'teacher_channels=6'):
        loss(torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), idx)
    with pytest.raises(ValueError, match='no token after the first num_prefix_tokens=1'):
        loss(torch.randn(2, 1, 4), torch.randn(2, 6), idx)
    with pytest.raises(ValueError, match='must be a \\(B, C, H, W\\) map'):
        loss(torch.randn(2, 4, 1, 1, 1), torch.randn(2, 6), idx)
    with pytest.raises(ValueError, match='student features hold 2 samples but the teacher '
                                         'features 3'):
        loss(torch.randn(2, 4), torch.randn(3, 6), idx)


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(num_samples=0), 'num_samples must be an integer >= 2, got 0'),
    (dict(num_samples=1), 'num_samples must be an integer >= 2, got 1'),
    (dict(num_samples=10.0), 'num_samples must be an integer >= 2, got 10.0'),
    (dict(num_samples=True), 'num_samples must be an integer >= 2, got True'),
    (dict(student_channels=0), 'student_channels must be an integer >= 1, got 0'),
    (dict(teacher_channels=None), 'teacher_channels must be an integer >= 1, got None'),
    (dict(feat_dim=-3), 'feat_dim must be an integer >= 1, got -3'),
    (dict(num_negatives=0), 'num_negatives must be an integer >= 1, got 0'),
    (dict(temperature=0), 'temperature must be a finite number > 0, got 0'),
    (dict(temperature=float('inf')), 'temperature must be a finite number > 0, got inf'),
    (dict(momentum=1.0), r'momentum must be a number in \[0, 1\), got 1.0'),
    (dict(momentum=-0.1), r'momentum must be a number in \[0, 1\), got -0.1'),
    (dict(num_prefix_tokens=-1), 'num_prefix_tokens must be an integer >= 0, got -1'),
    (dict(num_prefix_tokens=(1, 2, 3)), 'num_prefix_tokens must be an integer >= 0 or a '
                                        r'pair \(student, teacher\)'),
])
def test_crd_bad_arguments(kwargs, pattern):
    args = dict(num_samples=10, student_channels=4, teacher_channels=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match='CRDLoss: ' + pattern):
        CRDLoss(**args)


def test_crd_registered_and_bindable():
    loss = MODELS.build(dict(type='CRDLoss', num_samples=50, student_channels=128,
                             teacher_channels=64))
    assert isinstance(loss, CRDLoss) and loss.num_samples == 50
    assert (loss.feat_dim, loss.num_negatives, loss.temperature, loss.momentum) == \
        (128, 16384, 0.07, 0.5)
    import inspect
    assert list(inspect.signature(loss.forward).parameters) == \
        ['student_features', 'teacher_features', 'indices']
    from kdzoo.models.distill_term import bind_arguments
    bound = bind_arguments('crd', loss, dict(student_features='student.blocks.3',
                                             teacher_features='teacher.layer3'))
    assert {a: s.text for a, s in bound.items()} == {
        'student_features': 'student.blocks.3', 'teacher_features': 'teacher.layer3',
        'indices': 'indices'}


# ----- CRD: two processes --------------------------------------------------------------------
# Importing kdzoo (mmpretrain, timm) would take most of this test's time in each process:
# the worker stubs the kdzoo packages and the registry and imports crd.py (and
# logit_distill.py) themselves, which need torch only.
WORKER = textwrap.dedent(f'''
    import os, sys, types
    import torch
    import torch.distributed as dist
    for name, path in (('kdzoo', 'kdzoo'), ('kdzoo.losses', 'kdzoo/losses')):
        package = types.ModuleType(name)
        package.__path__ = [os.path.join({REPO!r}, path)]
        sys.modules[name] = package

    class Registry:
        def register_module(self, *args, **kwargs):
            return lambda cls: cls

    registry = types.ModuleType('kdzoo.registry')
    registry.MODELS = Registry()
    sys.modules['kdzoo.registry'] = registry
    from kdzoo.losses.crd import CRDLoss

    torch.set_num_threads(1)
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    data = torch.load(sys.argv[1])
    torch.manual_seed(0)
    loss = CRDLoss(**data['kwargs'])
    loss.sample_negatives = lambda idx: data['negatives'][rank]
    value = loss(data['student'][rank], data['teacher'][rank], data['indices'][rank])
    value.backward()
    torch.save(dict(loss=value.detach(), state=loss.state_dict()),
               sys.argv[2] + str(rank) + '.pt')
    # Leave as kdzoo.compat.finish_distributed does (gloo's teardown aborts now and then).
    dist.barrier()
    os._exit(0)
''')


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_crd_two_processes_keep_identical_banks(tmp_path):
    """Two gloo processes with batches of different sizes and indices (one index in both):
    the banks and Z end identical on both ranks and equal to one process's update with
    the whole batch (rank 0's samples, then rank 1's); each rank's loss is the one-process
    loss of its own samples under that Z."""
    kwargs = dict(num_samples=40, student_channels=6, teacher_channels=5, feat_dim=8,
                  num_negatives=16, momentum=0.4)
    g = torch.Generator().manual_seed(12)
    indices = [torch.tensor([3, 17, 25]), torch.tensor([8, 17, 39, 0, 22])]
    student = [torch.randn(len(i), 6, 2, 2, generator=g) for i in indices]
    teacher = [torch.randn(len(i), 5, 2, 2, generator=g) for i in indices]
    probe = CRDLoss(**kwargs)
    negatives = [fixed_negatives(probe, i, r) for r, i in enumerate(indices)]
    data = dict(kwargs=kwargs, indices=indices, student=student, teacher=teacher,
                negatives=negatives)
    torch.save(data, tmp_path / 'data.pt')
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE='2', LOCAL_RANK=str(rank),
                   MASTER_ADDR='127.0.0.1', MASTER_PORT=port, OMP_NUM_THREADS='1')
        procs.append(subprocess.Popen(
            [sys.executable, '-c', WORKER, str(tmp_path / 'data.pt'), str(tmp_path / 'out')],
            env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    try:
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rank, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, (rank, out[-3000:])
    results = [torch.load(tmp_path / f'out{rank}.pt') for rank in range(2)]
    for key, value in results[0]['state'].items():
        assert torch.equal(results[1]['state'][key], value), key

    torch.manual_seed(0)
    single = CRDLoss(**kwargs)
    single.sample_negatives = lambda idx: torch.cat(negatives)
    single(torch.cat(student), torch.cat(teacher), torch.cat(indices))
    state = results[0]['state']
    for key in ('memory_student', 'memory_teacher', 'log_z'):
        assert_close(state[key], single.state_dict()[key], key)
    assert not torch.equal(state['memory_student'], probe.memory_student)
    for rank in range(2):
        torch.manual_seed(0)
        local = CRDLoss(**kwargs).eval()
        local.log_z.copy_(state['log_z'])
        local.sample_negatives = lambda idx: negatives[rank]
        value = local(student[rank], teacher[rank], indices[rank])
        assert_close(results[rank]['loss'], value, f'rank {rank} loss')


# ----- MGD: float64 reference ---------------------------------------------------------------
def ref_grid(x, prefix):
    """(B, C, h, h) float64 map of (B, N, C) tokens after the first ``prefix``, the p-th
    remaining token at row p // h, column p % h; a map as it is."""
    x = x.double()
    if x.dim() == 4:
        return x
    b, n, c = x.shape
    h = int(round((n - prefix) ** 0.5))
    out = torch.zeros(b, c, h, h, dtype=torch.float64)
    for p in range(n - prefix):
        out[:, :, p // h, p % h] = x[:, prefix + p, :]
    return out


def ref_mgd(loss, s, t, mask):
    """alpha * sum_{b,c,i,j} (T - G(align(S) * M))^2 / B, G = conv3x3-ReLU-conv3x3,
    float64; the student aligned first, then resized to the teacher's size."""
    w = {k: leaf64(v) for k, v in loss.named_parameters()}
    prefix_s, prefix_t = loss.prefix_tokens
    s, t = ref_grid(s, prefix_s), ref_grid(t.detach(), prefix_t)
    if 'align.weight' in w:
        s = F.conv2d(s, w['align.weight'], w['align.bias'])
    if s.shape[-2:] != t.shape[-2:]:
        s = F.interpolate(s, size=t.shape[-2:], mode='bilinear', align_corners=False)
    hidden = F.relu(F.conv2d(s * mask.double(), w['generation.0.weight'],
                             w['generation.0.bias'], padding=1))
    g = F.conv2d(hidden, w['generation.2.weight'], w['generation.2.bias'], padding=1)
    total = 0
    for b in range(t.shape[0]):
        total = total + ((t[b] - g[b]) ** 2).sum()
    return loss.alpha_mgd * total / t.shape[0], w


def fixed_mask(shape, seed, ratio=0.5):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(shape, generator=g) >= ratio).float()
    mask.view(-1)[0] = 0  # at least one masked and one kept position
    mask.view(-1)[-1] = 1
    return mask


def mgd_case(loss, s, t, seed):
    """(value, gradients) of kdzoo's loss and of the reference with the same mask, for the
    student features and every parameter."""
    h, w = (t.shape[-2:] if t.dim() == 4
            else (int(round((t.shape[1] - loss.prefix_tokens[1]) ** 0.5)),) * 2)
    mask = fixed_mask((s.shape[0], 1, h, w), seed)
    seen = []

    def sample_mask(shape, device):
        seen.append(tuple(shape))
        return mask

    loss.sample_mask = sample_mask
    s = s.detach().clone().requires_grad_()
    value = loss(s, t)
    assert seen == [(s.shape[0], 1, h, w)]
    names = [k for k, _ in loss.named_parameters()]
    grads = torch.autograd.grad(value, [s] + [p for _, p in loss.named_parameters()])
    s64 = leaf64(s)
    ref, weights = ref_mgd(loss, s64, t, mask)
    ref_grads = torch.autograd.grad(ref, [s64] + [weights[k] for k in names])
    return value, grads, ref, ref_grads, ['student features'] + names


MGD_CASES = {
    # (student shape, teacher shape, student channels, teacher channels, prefix tokens)
    'same_width': ((3, 8, 5, 5), (3, 8, 5, 5), 8, 8, 0),
    'aligned': ((2, 6, 4, 4), (2, 10, 4, 4), 6, 10, 0),
    'resized': ((2, 6, 8, 8), (2, 4, 5, 5), 6, 4, 0),
    'tokens': ((2, 18, 6), (2, 7, 4, 4), 6, 7, (2, 0)),
    'both_tokens': ((2, 10, 5), (2, 17, 3), 5, 3, 1),
}


@pytest.mark.parametrize('case', list(MGD_CASES))
@pytest.mark.parametrize('seed', [0, 1])
def test_mgd_matches_float64_reference(case, seed):
    s_shape, t_shape, cs, ct, prefix = MGD_CASES[case]
    torch.manual_seed(seed)
    loss = MGDLoss(cs, ct, alpha_mgd=1.0 if seed == 0 else 7e-5, num_prefix_tokens=prefix)
    assert (loss.align is None) == (cs == ct)
    s, t = torch.randn(s_shape), torch.randn(t_shape)
    value, grads, ref, ref_grads, names = mgd_case(loss, s, t, seed)
    assert value.dtype == torch.float32
    assert_close(value, ref, f'{case} loss')
    for name, g, rg in zip(names, grads, ref_grads):
        assert_close(g, rg, f'{case} gradient of {name}')


@pytest.mark.parametrize('case', ['scaled_1e4', 'near_constant'])
def test_mgd_extreme_features(case):
    torch.manual_seed(2)
    loss = MGDLoss(4, 6, alpha_mgd=1.0)
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 6, 5, 5, generator=g)
    if case == 'scaled_1e4':
        s, t = s * 1e4, t * 1e4
    else:
        s = s[:1].expand_as(s).clone() + 1e-6 * torch.randn(s.shape, generator=g)
        t = t[:1].expand_as(t).clone() + 1e-6 * torch.randn(t.shape, generator=g)
    value, grads, ref, ref_grads, names = mgd_case(loss, s, t, 4)
    assert_close(value, ref, f'{case} loss')
    for name, gr, rg in zip(names, grads, ref_grads):
        assert_close(gr, rg, f'{case} gradient of {name}')


def test_mgd_bf16_autocast():
    torch.manual_seed(5)
    loss = MGDLoss(6, 8, alpha_mgd=1.0)
    s = torch.randn(2, 6, 4, 4).bfloat16()
    t = torch.randn(2, 8, 4, 4).bfloat16()
    mask = fixed_mask((2, 1, 4, 4), 6)
    loss.sample_mask = lambda shape, device: mask
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(s, t)
    assert value.dtype == torch.float32
    ref, _ = ref_mgd(loss, s.double(), t.double(), mask)
    assert_close(value, ref, 'bf16 loss')


def test_mgd_mask_sampling():
    """Per sample and position (one value for all channels), masked with probability
    lambda_mgd, from torch's global generator; the mask is applied (a masked position's
    student features do not reach the loss)."""
    loss = MGDLoss(3, 3, lambda_mgd=0.3)
    torch.manual_seed(0)
    mask = loss.sample_mask((40, 1, 30, 30), torch.device('cpu'))
    assert mask.shape == (40, 1, 30, 30)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs((mask == 0).double().mean().item() - 0.3) < 0.01
    torch.manual_seed(0)
    assert torch.equal(loss.sample_mask((40, 1, 30, 30), torch.device('cpu')), mask)
    # Only the masked centre of a 5x5 map: the student's centre gets no gradient.
    mask = torch.ones(1, 1, 5, 5)
    mask[0, 0, 2, 2] = 0
    loss.sample_mask = lambda shape, device: mask
    s = torch.randn(1, 3, 5, 5, requires_grad=True)
    loss(s, torch.randn(1, 3, 5, 5)).backward()
    assert (s.grad[0, :, 2, 2] == 0).all() and (s.grad[0, :, 1, 1] != 0).all()


def test_mgd_registered_and_defaults():
    loss = MODELS.build(dict(type='MGDLoss', student_channels=64, teacher_channels=64))
    assert isinstance(loss, MGDLoss) and loss.align is None
    assert (loss.alpha_mgd, loss.lambda_mgd) == (7e-5, 0.5)
    import inspect
    assert list(inspect.signature(loss.forward).parameters) == \
        ['student_features', 'teacher_features']
    assert set(loss.state_dict()) == {'generation.0.weight', 'generation.0.bias',
                                      'generation.2.weight', 'generation.2.bias'}


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(student_channels=0), 'student_channels must be an integer >= 1, got 0'),
    (dict(teacher_channels=2.0), 'teacher_channels must be an integer >= 1, got 2.0'),
    (dict(alpha_mgd=-1), 'alpha_mgd must be a finite number >= 0, got -1'),
    (dict(alpha_mgd=float('nan')), 'alpha_mgd must be a finite number >= 0, got nan'),
    (dict(lambda_mgd=1.0), r'lambda_mgd \(the mask ratio\) must be a number in \[0, 1\), '
                           'got 1.0'),
    (dict(lambda_mgd='0.5'), r"lambda_mgd .* must be a number in \[0, 1\), got '0.5'"),
    (dict(num_prefix_tokens=-2), 'num_prefix_tokens must be an integer >= 0, got -2'),
])
def test_mgd_bad_arguments(kwargs, pattern):
    args = dict(student_channels=4, teacher_channels=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match='MGDLoss: ' + pattern):
        MGDLoss(**args)


def test_mgd_bad_features():
    loss = MGDLoss(4, 6, num_prefix_tokens=1)
    with pytest.raises(ValueError, match=r'student features \(2, 5, 3, 3\) have 5 channels '
                                         'but student_channels=4'):
        loss(torch.randn(2, 5, 3, 3), torch.randn(2, 6, 3, 3))
    with pytest.raises(ValueError, match='leave 9 tokens|leave 7 tokens, not a square'):
        loss(torch.randn(2, 8, 4), torch.randn(2, 6, 3, 3))
    with pytest.raises(ValueError, match=r'must be a \(B, C, H, W\) map or \(B, N, C\)'):
        loss(torch.randn(2, 4), torch.randn(2, 6, 3, 3))
    with pytest.raises(ValueError, match='student features hold 2 samples but the teacher '
                                         'features 3'):
        loss(torch.randn(2, 4, 3, 3), torch.randn(3, 6, 3, 3))
