"""Opt-in torch.compile of the student and the teacher: the same losses as eager, module
names unchanged, and a stage switch compiles once per stage, not at every step."""
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from kdzoo.registry import MODELS
from test_distiller_terms import batch, distiller_cfg


def test_compiled_distiller_matches_eager_across_stage_switches():
    torch.manual_seed(0)
    eager = MODELS.build(distiller_cfg()).train()
    torch.manual_seed(0)
    # backend='eager' traces with Dynamo (graphs, guards, recompilation) without
    # generating kernels, which would take minutes on a CPU.
    compiled = MODELS.build(distiller_cfg(compile=dict(backend='eager'))).train()
    compiled.load_state_dict(eager.state_dict())
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    torch._dynamo.reset()
    counters.clear()
    x, samples = batch()
    for stage in (None, None, {}, {}, None, {}, None):
        eager.set_stage(stage)
        compiled.set_stage(stage)
        a, b = eager.loss(x, samples), compiled.loss(x, samples)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-6), key
        sum(b.values()).backward()
    compiled.eval()
    for _ in range(2):
        compiled.predict(x)
    # The teacher once; the student once per stage (recording block 0 or nothing) and
    # once at test time; switching back and forth adds nothing.
    assert counters['stats']['unique_graphs'] == 4


def test_compile_option_is_checked():
    import pytest
    with pytest.raises(ValueError, match='compile must be True, False or a dict'):
        MODELS.build(distiller_cfg(compile='yes'))
