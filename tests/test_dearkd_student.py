"""DearKD students (Chen et al. CVPR 2022, section 5.1): widths, heads and block types."""
import pytest
import torch

import kdzoo  # noqa: F401
from kdzoo.models.students.mhca import MHCA
from kdzoo.registry import MODELS

torch.set_num_threads(1)

PAPER = {'tiny': (192, 12), 'small': (384, 12), 'base': (768, 16)}


@pytest.mark.parametrize('arch', sorted(PAPER))
def test_paper_architectures(arch):
    # 32 px input keeps the build cheap; widths, heads and block types do not depend on it.
    net = MODELS.build(dict(type='DearKD', arch=arch, img_size=32, patch_size=16))
    dim, heads = PAPER[arch]
    assert net.embed_dim == dim and len(net.blocks) == 12
    assert net.distilled and net.num_prefix_tokens == 2
    kinds = [type(b.attn) for b in net.blocks]
    assert kinds[:8] == [MHCA] * 8
    assert all(not issubclass(k, MHCA) for k in kinds[8:])
    for block in net.blocks:
        assert block.attn.num_heads == heads
        assert block.attn.head_dim == dim // heads
    for block in net.blocks[:8]:
        assert block.attn.num_prefix_tokens == 2
        assert block.attn.rel_pos_weight.shape == (heads, 3)


def test_explicit_dims_and_mhca_count():
    net = MODELS.build(dict(type='DearKD', arch=None, embed_dim=32, num_heads=4, depth=4,
                            num_mhca_blocks=3, distilled=False, img_size=32, patch_size=4,
                            num_classes=10))
    assert [isinstance(b.attn, MHCA) for b in net.blocks] == [True, True, True, False]
    assert net.blocks[0].attn.num_prefix_tokens == 1
    out = net.train()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_bad_arguments():
    with pytest.raises(ValueError, match='arch'):
        MODELS.build(dict(type='DearKD', arch='huge'))
    with pytest.raises(ValueError, match='num_mhca_blocks'):
        MODELS.build(dict(type='DearKD', arch=None, embed_dim=32, num_heads=4, depth=2,
                          num_mhca_blocks=3, img_size=32, patch_size=4))


def test_linear_init_keeps_the_convolutional_initialisation():
    net = MODELS.build(dict(type='DearKD', arch=None, embed_dim=32, num_heads=4, depth=2,
                            num_mhca_blocks=2, img_size=32, patch_size=4, locality_strength=2.0))
    ref = MHCA(32, num_heads=4, locality_strength=2.0)
    assert torch.equal(net.blocks[0].attn.rel_pos_weight, ref.rel_pos_weight)


def test_zeroed_positional_terms_give_the_deit_with_the_same_weights():
    cfg = dict(arch=None, embed_dim=32, num_heads=4, depth=3, img_size=32, patch_size=4,
               num_classes=10)
    dearkd = MODELS.build(dict(type='DearKD', num_mhca_blocks=2, **cfg)).eval()
    deit = MODELS.build(dict(type='DeiT', **cfg)).eval()
    state = {k: v for k, v in dearkd.state_dict().items() if 'rel_pos_weight' not in k}
    deit.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(dearkd(x), deit(x), atol=1e-4)
        for block in dearkd.blocks[:2]:
            block.attn.rel_pos_weight.zero_()
        assert torch.allclose(dearkd(x), deit(x), rtol=0, atol=1e-5)
