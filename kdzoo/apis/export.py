"""Export a trained student for use without kdzoo: timm's, mmpretrain's or kdzoo's layout.

The student alone is written (no teacher, connectors, optimizer or message hub), as tensors
that ``torch.load(f, weights_only=True)`` reads in any process, together with the Python
code that loads it. Before the file is put in place, that code is run on it and its logits
are compared with the kdzoo student's, so a written file always loads as printed.
"""
import json
import os
import os.path as osp
import tempfile

import torch

from .model import ConfigError, load_config

TARGETS = ('timm', 'mmpretrain', 'kdzoo')
#: Largest |difference| of the exported model's logits from the student's that export
#: accepts (float32; the layouts run the same operations, so the difference is 0 or a
#: few ulp).
LOGIT_TOLERANCE = 1e-5
#: The version of the ``--to kdzoo`` file layout, stored in it.
KDZOO_FORMAT = 1


def student_kind(cfg):
    """'deit', 'dearkd', 'timm' (a timm model) or the student's type name."""
    student = cfg.model.get('student')
    if isinstance(student, str):
        return 'timm' if student.startswith('timm:') else student
    kind = student.get('type') if student is not None else None
    return {'DeiT': 'deit', 'kdzoo.DeiT': 'deit', 'DearKD': 'dearkd',
            'kdzoo.DearKD': 'dearkd', 'TimmModel': 'timm', 'kdzoo.TimmModel': 'timm'}.get(
                kind, str(kind))


_SUPPORTED = {'timm': ('deit', 'timm'), 'mmpretrain': ('deit',),
              'kdzoo': None}  # None: any student


def check_target(cfg, to):
    """Raise a ConfigError, before any work, unless the config's student can be exported
    to ``to``."""
    if to not in TARGETS:
        raise ConfigError(f'unknown export target {to!r}; choose one of {list(TARGETS)}')
    kind = student_kind(cfg)
    allowed = _SUPPORTED[to]
    if allowed is not None and kind not in allowed:
        names = {'deit': "kdzoo's DeiT", 'timm': 'timm models (TimmModel)'}
        raise ConfigError(
            f'a {kind} student cannot be exported --to {to}: it supports '
            f'{" and ".join(names[k] for k in allowed)} students only; use --to kdzoo, '
            "which holds any student (DearKD students then load with timm.create_model('"
            "dearkd_...') once kdzoo is imported)")
    return kind


def read_student_state(checkpoint):
    """The student's weights from a kdzoo/mmengine checkpoint of a Distiller or Classifier
    (keys ``student.*``, or ``model.*`` before the rename); anything else is refused."""
    from kdzoo.models.checkpoint import read_checkpoint, resolve_checkpoint
    path = resolve_checkpoint(checkpoint)
    ckpt = read_checkpoint(path)
    state = ckpt.get('state_dict') if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or 'meta' not in ckpt:
        raise ConfigError(f'{path} is not a kdzoo checkpoint (a dict with state_dict and '
                          'meta, as tools/train.py writes it)')
    for prefix in ('student.', 'model.'):
        net = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if net:
            return net
    tops = sorted({k.split('.', 1)[0] for k in state})
    raise ConfigError(f'{path} holds no student weights (keys under {tops}); export needs '
                      'a checkpoint of a Distiller or Classifier (keys student.*)')


def build_trained_student(cfg, checkpoint):
    """The config's student with the checkpoint's weights, loaded strictly."""
    from .model import build_student
    state = read_student_state(checkpoint)
    net = build_student(cfg)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(
            f'{checkpoint} does not fit the student of this config: {len(missing)} keys '
            f'missing (e.g. {missing[:4]}), {len(unexpected)} unexpected (e.g. '
            f'{unexpected[:4]}); is it a checkpoint of this config (not of its teacher)?')
    return net.eval()


def _data_settings(cfg):
    pre = cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor') or {}
    return {k: list(pre[k]) if k in ('mean', 'std') else pre[k]
            for k in ('mean', 'std', 'to_rgb') if pre.get(k) is not None}


def _crop_pct(cfg):
    """timm's crop_pct for the config's test pipeline: 1.0 without resizing, crop/edge for
    ResizeEdge + CenterCrop; None when the pipeline is neither."""
    from .inference import test_pipeline_cfg
    steps = {t['type']: t for t in test_pipeline_cfg(cfg)}
    if not set(steps) - {'LoadImageFromFile', 'PackInputs'}:
        return 1.0
    if set(steps) - {'LoadImageFromFile', 'PackInputs'} == {'ResizeEdge', 'CenterCrop'}:
        return round(steps['CenterCrop']['crop_size'] / steps['ResizeEdge']['scale'], 4)
    return None


def _deit_geometry(net):
    block = net.blocks[0]
    return dict(img_size=net.patch_embed.img_size, patch_size=net.patch_embed.patch_size,
                in_chans=net.patch_embed.proj.in_channels, embed_dim=net.embed_dim,
                depth=len(net.blocks), num_heads=block.attn.num_heads,
                mlp_ratio=block.mlp.fc1.out_features / net.embed_dim,
                qkv_bias=block.attn.qkv.bias is not None, num_classes=net.num_classes)


#: timm's DeiT widths: arch -> (embed_dim, num_heads); depth 12, 16x16 patches at 224.
_TIMM_DEIT = {'tiny': (192, 3), 'small': (384, 6), 'base': (768, 12)}


def timm_call(cfg, net, kind, file):
    """Python code that builds the timm model of the student and loads ``file`` into it.

    ``num_classes`` goes into the overlay too: timm drops the classifier of a file whose
    class count differs from its pretrained config's, and would leave it random."""
    overlay = dict(file=file, num_classes=net.num_classes)
    if kind == 'deit':
        geo = _deit_geometry(net)
        arch = next((a for a, (dim, _) in _TIMM_DEIT.items() if dim == geo['embed_dim']),
                    'tiny')
        name = f"deit_{arch}{'_distilled' if net.distilled else ''}_patch16_224"
        dim, heads = _TIMM_DEIT[arch]
        defaults = dict(img_size=224, patch_size=16, in_chans=3, embed_dim=dim, depth=12,
                        num_heads=heads, mlp_ratio=4.0, qkv_bias=True, num_classes=1000)
        kwargs = {k: v for k, v in geo.items() if defaults[k] != v}
        data = _data_settings(cfg)
        if 'mean' in data:
            overlay.update(mean=tuple(round(m / 255, 6) for m in data['mean']),
                           std=tuple(round(s / 255, 6) for s in data['std']))
        overlay['input_size'] = (geo['in_chans'], geo['img_size'], geo['img_size'])
        crop = _crop_pct(cfg)
        if crop is not None:
            overlay['crop_pct'] = crop
    else:
        student = cfg.model.student
        if isinstance(student, str):
            name, kwargs = student[len('timm:'):], {}
        else:
            kwargs = {k: v for k, v in student.to_dict().items()
                      if k not in ('type', 'model_name', 'pretrained')}
            name = student['model_name']
    args = ''.join(f', {k}={v!r}' for k, v in kwargs.items())
    over = ', '.join(f'{k}={v!r}' for k, v in overlay.items())
    return ('import timm\n'
            f'model = timm.create_model({name!r}{args}, pretrained=True,\n'
            f'                          pretrained_cfg_overlay=dict({over})).eval()\n')


def mmpretrain_state(state):
    """kdzoo DeiT keys -> mmpretrain ImageClassifier keys (DistilledVisionTransformer or
    VisionTransformer backbone, DeiTClsHead or VisionTransformerClsHead)."""
    import re
    rules = [(r'^(cls_token|dist_token|pos_embed)$', r'backbone.\1'),
             (r'^patch_embed\.proj\.', 'backbone.patch_embed.projection.'),
             (r'^blocks\.(\d+)\.norm1\.', r'backbone.layers.\1.ln1.'),
             (r'^blocks\.(\d+)\.norm2\.', r'backbone.layers.\1.ln2.'),
             (r'^blocks\.(\d+)\.attn\.', r'backbone.layers.\1.attn.'),
             (r'^blocks\.(\d+)\.mlp\.fc1\.', r'backbone.layers.\1.ffn.layers.0.0.'),
             (r'^blocks\.(\d+)\.mlp\.fc2\.', r'backbone.layers.\1.ffn.layers.1.'),
             (r'^norm\.', 'backbone.ln1.'),
             (r'^head\.', 'head.layers.head.'),
             (r'^head_dist\.', 'head.layers.head_dist.')]
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            new = re.sub(pattern, repl, key)
            if new != key:
                out[new] = value
                break
        else:
            raise ValueError(f'no mmpretrain name for the DeiT key {key!r}')
    return out


def mmpretrain_model_cfg(cfg, net):
    """The mmpretrain ImageClassifier config of a kdzoo DeiT student."""
    geo = _deit_geometry(net)
    backbone = dict(
        type='DistilledVisionTransformer' if net.distilled else 'VisionTransformer',
        arch=dict(embed_dims=geo['embed_dim'], num_layers=geo['depth'],
                  num_heads=geo['num_heads'],
                  feedforward_channels=int(geo['embed_dim'] * geo['mlp_ratio'])),
        img_size=geo['img_size'], patch_size=geo['patch_size'],
        in_channels=geo['in_chans'], qkv_bias=geo['qkv_bias'])
    head = dict(type='DeiTClsHead' if net.distilled else 'VisionTransformerClsHead',
                num_classes=geo['num_classes'], in_channels=geo['embed_dim'])
    pre = dict(type='ClsDataPreprocessor', num_classes=geo['num_classes'],
               **_data_settings(cfg))
    return dict(type='ImageClassifier', backbone=backbone, neck=None, head=head,
                data_preprocessor=pre)


def mmpretrain_code(cfg, net, file):
    model = mmpretrain_model_cfg(cfg, net)
    return ('import torch\n'
            'from mmpretrain.models import build_classifier\n'
            f'cfg = {model!r}\n'
            'model = build_classifier(cfg).eval()\n'
            f'model.load_state_dict(torch.load({file!r}, weights_only=True))\n'
            '# or: mmpretrain.get_model(mmengine.Config(dict(model=cfg)), '
            f'pretrained={file!r})\n')


def kdzoo_code(net, kind, file):
    code = f'import kdzoo\nmodel = kdzoo.get_model({file!r})\n'
    if kind == 'dearkd':
        from kdzoo.models.students.dearkd import DEARKD_ARCHS
        geo = dict(_deit_geometry(net), num_mhca_blocks=net.num_mhca_blocks,
                   distilled=net.distilled)
        arch = next((a for a, w in DEARKD_ARCHS.items()
                     if (w['embed_dim'], w['num_heads']) == (geo['embed_dim'],
                                                             geo['num_heads'])), 'tiny')
        defaults = dict(img_size=224, patch_size=16, in_chans=3, depth=12, mlp_ratio=4.0,
                        qkv_bias=True, num_classes=1000, num_mhca_blocks=8, distilled=True,
                        **DEARKD_ARCHS[arch])
        args = ''.join(f', {k}={v!r}' for k, v in geo.items() if defaults[k] != v)
        code += ('# or, with timm (kdzoo imported registers the DearKD models):\n'
                 f'# timm.create_model({"dearkd_" + arch!r}{args}, pretrained=True, '
                 f'pretrained_cfg_overlay=dict(file={file!r}))\n')
    return code


def kdzoo_payload(cfg, state, config_name):
    """The ``--to kdzoo`` file: the student's tensors, and its build config, data
    preprocessing, test pipeline and class names as JSON strings (weights_only reads
    them)."""
    from kdzoo.version import __version__

    from .inference import class_names_of, test_pipeline_cfg
    student = cfg.model.student
    student = student.to_dict() if hasattr(student, 'to_dict') else student
    return dict(state_dict=state, kdzoo=dict(
        format=KDZOO_FORMAT, version=__version__, config=config_name,
        student=json.dumps(student), data_preprocessor=json.dumps(_data_settings(cfg)),
        test_pipeline=json.dumps(test_pipeline_cfg(cfg)),
        classes=json.dumps(class_names_of(cfg))))


def _logits(model, x, mmpretrain=False):
    with torch.no_grad():
        out = model(x, mode='tensor') if mmpretrain else model(x)
    return out[0] if isinstance(out, (tuple, list)) else out


def export_student(config, checkpoint, to, out, cfg_options=None):
    """Write the student of ``config`` with the weights of ``checkpoint`` to ``out`` in the
    layout of ``to`` ('timm', 'mmpretrain' or 'kdzoo').

    Returns a dict: ``out``, ``to``, ``code`` (Python that loads the file), ``tensors``
    (how many) and ``max_abs_diff`` (exported model's logits against the student's, on a
    random batch).
    """
    from .configs import find_config
    config = find_config(config)
    cfg = load_config(config, cfg_options)
    kind = check_target(cfg, to)  # before reading any weights
    out_dir = osp.dirname(osp.abspath(out))
    if not osp.isdir(out_dir):
        raise ConfigError(f'folder {out_dir!r} of --out does not exist')
    net = build_trained_student(cfg, checkpoint)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    if to == 'mmpretrain':
        payload, make_code = mmpretrain_state(state), lambda f: mmpretrain_code(cfg, net, f)
    elif to == 'timm':
        payload, make_code = state, lambda f: timm_call(cfg, net, kind, f)
    else:
        payload = kdzoo_payload(cfg, state, osp.basename(config))
        make_code = lambda f: kdzoo_code(net, kind, f)  # noqa: E731
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix='.export-', suffix='.pth')
    os.close(fd)
    try:
        torch.save(payload, tmp)
        diff = _check_loads(net, make_code(tmp), to == 'mmpretrain')
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return dict(out=out, to=to, code=make_code(out), tensors=len(state), max_abs_diff=diff)


def _check_loads(net, code, mmpretrain):
    """Run the loading code and compare its model's logits with the student's."""
    namespace = {}
    exec(code, namespace)  # the code that was generated above, not user input
    model = namespace['model'].eval()
    size = _input_size(net)
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(0))
    diff = (_logits(model, x, mmpretrain) - _logits(net, x)).abs().max().item()
    if not diff <= LOGIT_TOLERANCE:
        raise RuntimeError(f'the exported model disagrees with the student: logits differ by '
                           f'{diff:.3g} (> {LOGIT_TOLERANCE}); nothing was written')
    return diff


def _input_size(net):
    if hasattr(net, 'patch_embed'):
        pe = net.patch_embed
        img = pe.img_size if isinstance(pe.img_size, int) else pe.img_size[0]
        return (pe.proj.in_channels, img, img)
    cfg = getattr(net, 'pretrained_cfg', None) or {}
    return tuple(cfg.get('input_size', (3, 224, 224)))
