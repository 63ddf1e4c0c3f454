"""The DeiT student: timm checkpoint compatibility, heads in train/eval mode, position
embedding resizing and the paper's widths."""
import pytest
import timm
import torch
import torch.nn.functional as F

from kdzoo.models import DeiT
from kdzoo.models.students.deit import DEIT_ARCHS
from kdzoo.models.students.vit_blocks import resize_pos_embed
from kdzoo.registry import MODELS


@pytest.fixture(scope='module')
def timm_deit_tiny_distilled():
    """timm's DeiT-Ti distilled with seeded random weights, every parameter perturbed so
    that biases and norms are not at their (symmetric) initial values."""
    torch.manual_seed(0)
    model = timm.create_model('deit_tiny_distilled_patch16_224', pretrained=False)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model.eval()


@pytest.fixture(scope='module')
def images_224():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))


def test_timm_state_dict_loads_with_all_keys_matched(timm_deit_tiny_distilled):
    ours = DeiT(arch='tiny', distilled=True)
    theirs = timm_deit_tiny_distilled.state_dict()
    assert set(ours.state_dict()) == set(theirs)
    result = ours.load_state_dict(theirs, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in ours.state_dict().items():
        assert torch.equal(value, theirs[key]), key


def test_timm_weights_give_identical_eval_logits(timm_deit_tiny_distilled, images_224):
    ours = DeiT(arch='tiny', distilled=True)
    ours.load_state_dict(timm_deit_tiny_distilled.state_dict())
    ours.eval()
    with torch.no_grad():
        want = timm_deit_tiny_distilled(images_224)
        got = ours(images_224)
    assert got.shape == (2, 1000)
    assert torch.allclose(got, want, atol=1e-5)
    # Not trivially equal: the two images get different predictions.
    assert not torch.allclose(got[0], got[1], atol=1e-3)


def test_heads_match_timm_heads(timm_deit_tiny_distilled, images_224):
    ours = DeiT(arch='tiny', distilled=True)
    ours.load_state_dict(timm_deit_tiny_distilled.state_dict())
    ours.eval()
    with torch.no_grad():
        feats = timm_deit_tiny_distilled.forward_features(images_224)
        want_cls = timm_deit_tiny_distilled.head(feats[:, 0])
        want_dist = timm_deit_tiny_distilled.head_dist(feats[:, 1])
        cls, dist = ours.forward_heads(images_224)
    assert torch.allclose(cls, want_cls, atol=1e-5)
    assert torch.allclose(dist, want_dist, atol=1e-5)


def tiny_student(distilled=True, **kw):
    torch.manual_seed(0)
    return DeiT(arch=None, embed_dim=32, depth=2, num_heads=2, patch_size=4, img_size=32,
                num_classes=10, distilled=distilled, **kw)


def test_training_mode_returns_both_heads_eval_returns_their_mean():
    model = tiny_student()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model.train()
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 2
    cls, dist = model.forward_heads(x)
    assert torch.allclose(out[0], cls) and torch.allclose(out[1], dist)
    assert not torch.allclose(cls, dist, atol=1e-4)
    model.eval()
    joint = model(x)
    assert isinstance(joint, torch.Tensor) and joint.shape == (3, 10)
    assert torch.allclose(joint, (cls + dist) / 2, atol=1e-6)


def test_non_distilled_student_returns_class_logits_in_both_modes():
    model = tiny_student(distilled=False)
    assert model.dist_token is None and model.head_dist is None
    assert model.pos_embed.shape[1] == 64 + 1
    x = torch.randn(2, 3, 32, 32)
    cls, dist = model.forward_heads(x)
    assert dist is None
    model.train()
    assert torch.allclose(model(x), cls)
    model.eval()
    assert torch.allclose(model(x), cls)


def test_distilled_student_has_two_prefix_tokens():
    model = tiny_student()
    assert model.num_prefix_tokens == 2
    assert model.pos_embed.shape == (1, 64 + 2, 32)


def test_224_checkpoint_into_384_model_resizes_pos_embed(timm_deit_tiny_distilled):
    state = timm_deit_tiny_distilled.state_dict()
    old = state['pos_embed']
    assert old.shape == (1, 14 * 14 + 2, 192)
    model = DeiT(arch='tiny', distilled=True, img_size=384)
    assert model.grid_size == (24, 24)
    model.load_state_dict(state, strict=True)
    new = model.pos_embed.detach()
    assert new.shape == (1, 24 * 24 + 2, 192)
    # Class and distillation tokens' embeddings are kept as they are.
    assert torch.equal(new[:, :2], old[:, :2])
    # The patch grid is resized bicubically.
    grid = old[:, 2:].reshape(1, 14, 14, 192).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(24, 24), mode='bicubic', align_corners=False)
    want = want.permute(0, 2, 3, 1).reshape(1, 24 * 24, 192)
    assert torch.allclose(new[:, 2:], want, atol=1e-6)
    # The other weights are loaded unchanged and the model runs at 384.
    assert torch.equal(model.head_dist.weight, state['head_dist.weight'])
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 384, 384))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    # The caller's state dict is not modified by the resize.
    assert state['pos_embed'].shape == (1, 14 * 14 + 2, 192)


def test_resize_pos_embed_keeps_a_constant_grid_constant():
    pos = torch.cat([torch.randn(1, 1, 8), torch.full((1, 16, 8), 0.25)], dim=1)
    out = resize_pos_embed(pos, 1, (6, 6))
    assert out.shape == (1, 37, 8)
    assert torch.equal(out[:, :1], pos[:, :1])
    assert torch.allclose(out[:, 1:], torch.full((1, 36, 8), 0.25), atol=1e-6)


def test_resize_pos_embed_rejects_non_square_grid():
    with pytest.raises(ValueError, match='non-square'):
        resize_pos_embed(torch.zeros(1, 1 + 12, 8), 1, (4, 4))


# Parameter counts of the paper's Table 1 models (timm's deit_*_patch16_224).
PARAMS = {'tiny': 5_717_416, 'small': 22_050_664, 'base': 86_567_656}


@pytest.mark.parametrize('arch,dim,heads', [('tiny', 192, 3), ('small', 384, 6),
                                            ('base', 768, 12)])
def test_width_table(arch, dim, heads):
    assert DEIT_ARCHS[arch] == dict(embed_dim=dim, num_heads=heads)
    model = MODELS.build(dict(type='DeiT', arch=arch, distilled=False))
    assert model.embed_dim == dim
    assert len(model.blocks) == 12
    assert all(b.attn.num_heads == heads and b.attn.head_dim == 64 for b in model.blocks)
    assert model.patch_embed.patch_size == 16
    assert model.patch_embed.proj.kernel_size == (16, 16)
    assert model.patch_embed.num_patches == 196
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch]


def test_arch_none_uses_given_geometry():
    model = tiny_student()
    assert model.embed_dim == 32 and len(model.blocks) == 2
    assert model.blocks[0].attn.num_heads == 2


@pytest.mark.parametrize('arch', ['huge', 'Tiny', 'deit_tiny'])
def test_bad_arch_raises(arch):
    with pytest.raises(ValueError, match=repr(arch)):
        DeiT(arch=arch)


def test_arch_none_without_width_raises():
    with pytest.raises(ValueError, match='embed_dim'):
        DeiT(arch=None, embed_dim=None, num_heads=None)


def test_img_size_not_multiple_of_patch_raises():
    with pytest.raises(ValueError, match='30'):
        DeiT(arch=None, embed_dim=32, num_heads=2, depth=1, img_size=30, patch_size=4)


def test_wrong_input_size_raises():
    model = tiny_student()
    with pytest.raises(ValueError, match='64x64'):
        model(torch.randn(1, 3, 64, 64))


def test_pretrained_224_file_builds_384_model(timm_deit_tiny_distilled, tmp_path):
    """``pretrained=`` reads a timm-format file safely and resizes the position grid."""
    path = tmp_path / 'deit_tiny_distilled_224.pth'
    torch.save({'model': timm_deit_tiny_distilled.state_dict()}, path)
    model = MODELS.build(dict(type='DeiT', arch='tiny', distilled=True, img_size=384,
                              pretrained=str(path)))
    state = timm_deit_tiny_distilled.state_dict()
    assert model.pos_embed.shape == (1, 24 * 24 + 2, 192)
    assert torch.equal(model.blocks[3].attn.qkv.weight, state['blocks.3.attn.qkv.weight'])
    assert torch.equal(model.pos_embed[:, :2].detach(), state['pos_embed'][:, :2])


def test_pretrained_missing_file_raises(tmp_path):
    missing = str(tmp_path / 'absent.pth')
    with pytest.raises(FileNotFoundError, match=missing):
        DeiT(arch=None, embed_dim=32, num_heads=2, depth=1, img_size=32, patch_size=4,
             pretrained=missing)
