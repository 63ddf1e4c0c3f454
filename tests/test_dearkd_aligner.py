"""The DearKD aligner, the hidden-layer MSE loss and recording layers by name."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import kdzoo  # noqa: F401
from kdzoo.models import FeatureRecorder
from kdzoo.models.aligner import ChannelLayerNorm
from kdzoo.registry import MODELS

torch.set_num_threads(1)


@pytest.mark.parametrize('c_s,prefix,grid,c_t,size', [
    (192, 2, 14, 1232, 14),  # DearKD-Ti -> regnety_160 s3
    (192, 2, 14, 448, 28),   # -> s2, upsampled
    (384, 1, 14, 3024, 7),   # no distillation token -> s4, downsampled
    (128, 2, 8, 64, 8),      # CIFAR micro -> ResNet-20 layer3
    (128, 2, 8, 32, 16),     # -> layer2
    (32, 2, 8, None, 8),     # same width: no projection
])
def test_output_shapes(c_s, prefix, grid, c_t, size):
    aligner = MODELS.build(dict(type='Aligner', student_channels=c_s, teacher_channels=c_t,
                                num_prefix_tokens=prefix))
    out = aligner(torch.randn(2, prefix + grid * grid, c_s), size=(size, size))
    assert out.shape == (2, c_t or c_s, size, size)
    assert aligner.dwconv.groups == c_s and aligner.dwconv.kernel_size == (3, 3)
    assert isinstance(aligner.proj, nn.Identity) == (c_t is None)


def test_prefix_tokens_are_dropped_and_patches_kept_in_place():
    torch.manual_seed(0)
    aligner = MODELS.build(dict(type='Aligner', student_channels=16, teacher_channels=8,
                                num_prefix_tokens=2))
    x = torch.randn(1, 2 + 16, 16)
    y = x.clone()
    y[:, :2] += 5.0
    assert torch.equal(aligner(x), aligner(y))
    # Patch token 5 of a 4x4 grid is row 1, column 1 of the map; a depth-wise 3x3
    # convolution spreads a change there only to rows/columns 0-2.
    z = x.clone()
    z[:, 2 + 5] += 5.0
    changed = (aligner(x) - aligner(z)).abs().sum(dim=1)[0] > 0
    assert changed[1, 1] and changed[:3, :3].all()
    assert not changed[3].any() and not changed[:, 3].any()


def test_wrong_prefix_count_is_reported():
    aligner = MODELS.build(dict(type='Aligner', student_channels=16, num_prefix_tokens=1))
    with pytest.raises(ValueError, match='square'):
        aligner(torch.randn(1, 2 + 16, 16))


def test_channel_layer_norm_normalises_over_channels():
    x = torch.randn(2, 6, 3, 3) * 4 + 3
    y = ChannelLayerNorm(6)(x)
    assert torch.allclose(y.mean(dim=1), torch.zeros(2, 3, 3), atol=1e-5)
    assert torch.allclose(y.var(dim=1, unbiased=False), torch.ones(2, 3, 3), atol=1e-3)


def test_hidden_mse_loss():
    loss = MODELS.build(dict(type='HiddenMSELoss'))
    s = torch.randn(2, 4, 3, 3, requires_grad=True)
    t = torch.randn(2, 4, 3, 3, requires_grad=True)
    value = loss(s, t)
    assert torch.allclose(value, ((s - t) ** 2).mean())
    value.backward()
    assert s.grad is not None and t.grad is None
    with pytest.raises(ValueError, match='teacher_channels'):
        loss(torch.randn(2, 4, 3, 3), torch.randn(2, 5, 3, 3))


class TwoStage(nn.Module):

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.stage = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU())
        self.pair = PairOut()

    def forward(self, x):
        return self.stage(self.stem(x))


class PairOut(nn.Module):

    def forward(self, x):
        return x, x


def test_recorder_records_only_while_recording():
    net = TwoStage()
    rec = FeatureRecorder(net, ['stem', 'stage'], owner='teacher', detach=True)
    x = torch.randn(2, 3, 8, 8)
    net(x)
    assert rec.outputs == {}
    with rec.recording() as feats:
        out = net(x)
    assert set(feats) == {'stem', 'stage'}
    assert torch.equal(rec.get('stage'), out) and rec.get('stem').shape == (2, 4, 8, 8)
    assert not rec.get('stage').requires_grad
    rec.remove()
    with rec.recording() as feats:
        net(x)
    assert feats == {}


def test_wrong_layer_name_lists_the_available_names():
    with pytest.raises(ValueError) as err:
        FeatureRecorder(TwoStage(), ['stage', 'model.stage'], owner='teacher')
    msg = str(err.value)
    assert "'model.stage'" in msg and 'did you mean' in msg
    for name in ('stem', 'stage', 'stage.0', 'stage.1', 'pair'):
        assert name in msg


def test_non_tensor_output_is_refused():
    net = TwoStage()
    rec = FeatureRecorder(net, ['pair'])
    with rec.recording(), pytest.raises(TypeError, match='not a tensor'):
        net.pair(torch.zeros(1))


def test_aligner_trains_towards_a_teacher_map():
    """A few steps of the hidden loss reduce it: the aligner and loss are differentiable
    end to end."""
    torch.manual_seed(0)
    aligner = MODELS.build(dict(type='Aligner', student_channels=8, teacher_channels=4,
                                num_prefix_tokens=2))
    tokens = torch.randn(4, 2 + 16, 8)
    target = F.relu(torch.randn(4, 4, 8, 8))
    loss = MODELS.build(dict(type='HiddenMSELoss'))
    opt = torch.optim.Adam(aligner.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        value = loss(aligner(tokens, size=(8, 8)), target)
        first = value.item() if first is None else first
        opt.zero_grad()
        value.backward()
        opt.step()
    assert value.item() < 0.8 * first
