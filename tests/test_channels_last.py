"""Classifier(channels_last=True): a CNN trained in channels-last memory format computes
what the plain one does, with the same checkpoint keys."""
import torch

from conftest import tiny_resnet
from kdzoo.registry import MODELS


def build(channels_last):
    torch.manual_seed(0)
    return MODELS.build(dict(type='Classifier', student=tiny_resnet(),
                             channels_last=channels_last))


def first_conv(model):
    return next(m for m in model.student.modules() if isinstance(m, torch.nn.Conv2d))


def test_channels_last_classifier_matches_the_plain_one():
    plain, fast = build(False), build(True)
    assert first_conv(fast).weight.is_contiguous(memory_format=torch.channels_last)
    assert list(fast.state_dict()) == list(plain.state_dict())
    layouts = []
    first_conv(fast).register_forward_pre_hook(lambda m, args: layouts.append(
        args[0].is_contiguous(memory_format=torch.channels_last)))
    x = torch.randn(4, 3, 16, 16)
    for model in (plain, fast):
        model.train()
    out_plain, out_fast = plain.heads(x)[0], fast.heads(x)[0]
    assert layouts == [True]
    assert torch.allclose(out_fast, out_plain, rtol=1e-4, atol=1e-5)
    out_plain.sum().backward()
    out_fast.sum().backward()
    for (name, a), b in zip(plain.named_parameters(), fast.parameters()):
        assert torch.allclose(b.grad, a.grad, rtol=1e-3, atol=1e-5), name
    # A plain checkpoint loads into the channels-last model and keeps its layout.
    fast.load_state_dict(plain.state_dict())
    assert first_conv(fast).weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(first_conv(fast).weight, first_conv(plain).weight)
