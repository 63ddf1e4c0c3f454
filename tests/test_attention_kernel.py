"""The attention kernel kdzoo's students pick (kdzoo.models.students.vit_blocks.attention):
torch's math kernel for short bf16 sequences on the CPU, torch's own choice otherwise, with
the same numbers as the fused kernel up to bf16 rounding."""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import kdzoo.models.students.vit_blocks as vit_blocks
from kdzoo.models.students.mhca import MHCA
from kdzoo.models.students.vit_blocks import CPU_BF16_MATH_MAX_TOKENS, Attention, attention

torch.set_num_threads(1)


@pytest.fixture
def kernels(monkeypatch):
    """The backends each attention call asked for (None: torch's own choice)."""
    seen = []
    original = vit_blocks.sdpa_kernel

    def recording(backends):
        seen.append(list(backends))
        return original(backends)

    monkeypatch.setattr(vit_blocks, 'sdpa_kernel', recording)
    return seen


def qkv(tokens, dtype, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2, 4, tokens, 16, generator=g) * scale).to(dtype) for _ in range(3)]


@pytest.mark.parametrize('tokens,dtype,math', [
    (65, torch.bfloat16, True), (CPU_BF16_MATH_MAX_TOKENS, torch.bfloat16, True),
    (CPU_BF16_MATH_MAX_TOKENS + 1, torch.bfloat16, False), (65, torch.float32, False)])
def test_the_math_kernel_only_for_short_bf16_sequences(kernels, tokens, dtype, math):
    attention(*qkv(tokens, dtype))
    assert kernels == ([[SDPBackend.MATH]] if math else [])


@pytest.mark.parametrize('scale', [1.0, 4.0])
def test_math_kernel_agrees_with_the_fused_one_and_float64(scale):
    """Output and input gradients of the bf16 math kernel are as close to a float64
    evaluation as the fused flash kernel's (scale 4: logits spanning hundreds)."""
    q, k, v = qkv(65, torch.bfloat16, scale)
    g = torch.randn(q.shape, generator=torch.Generator().manual_seed(5))

    def run(backend):
        ins = [t.detach().clone().requires_grad_() for t in (q, k, v)]
        with sdpa_kernel([backend]):
            out = F.scaled_dot_product_attention(*ins)
        out.float().mul(g).sum().backward()
        return [out.double()] + [t.grad.double() for t in ins]

    ins = [t.detach().double().requires_grad_() for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*ins)
    out.mul(g.double()).sum().backward()
    exact = [out.detach()] + [t.grad for t in ins]
    math, flash = run(SDPBackend.MATH), run(SDPBackend.FLASH_ATTENTION)
    for name, m, f, e in zip(('out', 'dq', 'dk', 'dv'), math, flash, exact):
        err_math, err_flash = (m - e).abs().max(), (f - e).abs().max()
        assert err_math <= 2 * err_flash + 0.02 * e.abs().max(), (name, err_math, err_flash)


def test_students_attend_through_it(kernels):
    """MHSA and MHCA under bf16 autocast on a CIFAR grid (65 tokens) take the math kernel;
    MHCA trained in bf16 keeps its float32 kernel (torch's choice)."""
    x = torch.randn(2, 65, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        Attention(32, num_heads=4)(x)
        with torch.no_grad():
            MHCA(32, num_heads=4)(x)
    assert kernels == [[SDPBackend.MATH]] * 2
    kernels.clear()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        MHCA(32, num_heads=4)(x).sum().backward()
    assert kernels == []
