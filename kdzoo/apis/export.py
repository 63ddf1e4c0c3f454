"""Export a trained student for use without kdzoo: timm's, mmpretrain's or kdzoo's layout.

The student alone is written (no teacher, connectors, optimizer or message hub), as tensors
that ``torch.load(f, weights_only=True)`` reads in any process, together with the Python
code that loads it. Before the file is put in place, that code is run on it and its logits
are compared with the kdzoo student's, so a written file always loads as printed.
"""
import contextlib
import io
import json
import math
import os
import os.path as osp
import pprint
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


def _timm_crop_pct(crop, edge):
    """The shortest crop_pct for which timm's ``floor(crop / crop_pct)`` is ``edge``."""
    pct = crop / edge
    for digits in range(4, 18):
        if math.floor(crop / round(pct, digits)) == edge:
            return round(pct, digits)
    while math.floor(crop / pct) < edge:
        pct = math.nextafter(pct, 0)
    return pct


def inference_pipeline(cfg, net):
    """The test pipeline that kdzoo's Predictor applies to the student: the config's,
    completed to bring any image to the student's input size
    (:func:`~kdzoo.apis.inference.inference_pipeline_cfg`)."""
    from .inference import inference_pipeline_cfg, input_size_of
    return inference_pipeline_cfg(cfg, input_size_of(cfg, net))


def timm_data_cfg(cfg, net):
    """timm's preprocessing settings (``pretrained_cfg`` keys that
    ``timm.data.resolve_data_config`` reads) equivalent to the student's: ``input_size``,
    ``interpolation``, ``crop_pct`` and ``crop_mode`` from the test pipeline kdzoo's
    Predictor applies, ``mean`` and ``std`` (0-1 scale) from the data preprocessor.

    ``ResizeEdge`` (short side) + ``CenterCrop`` is timm's 'center' mode with
    ``crop_pct = crop / edge``; ``Resize`` (+ ``CenterCrop``) its 'squash' mode. A pipeline
    timm cannot express, or a student trained on BGR images, is a ConfigError."""
    from .inference import _SIZE_STEPS, input_size_of, step_type
    data = _data_settings(cfg)
    if not data.get('to_rgb', False) and 'mean' in data:
        raise ConfigError('the student takes BGR images (data_preprocessor.to_rgb is not '
                          'True) but timm feeds RGB; use --to kdzoo or --to mmpretrain')
    out = {}
    size = input_size_of(cfg, net)
    steps = [t for t in inference_pipeline(cfg, net) if step_type(t) in _SIZE_STEPS]
    kinds = [step_type(t) for t in steps]
    if size is not None:
        chans = getattr(getattr(getattr(net, 'patch_embed', None), 'proj', None),
                        'in_channels', 3)
        out['input_size'] = (chans, *size)
        first = steps[0] if steps else {}
        if kinds == ['ResizeEdge', 'CenterCrop'] and first.get('edge', 'short') == 'short':
            out.update(crop_pct=_timm_crop_pct(size[0], first['scale']), crop_mode='center')
        elif kinds in (['Resize'], ['Resize', 'CenterCrop']):
            scale = first['scale']
            edge = scale if isinstance(scale, int) else scale[1]  # mmcv's scale is (w, h)
            out.update(crop_pct=_timm_crop_pct(size[0], edge), crop_mode='squash')
        else:
            raise ConfigError(f'the test pipeline resizes with {kinds}, which timm\'s eval '
                              'transform cannot express (it takes ResizeEdge + CenterCrop or '
                              'Resize [+ CenterCrop]); use --to kdzoo')
        out['interpolation'] = first.get('interpolation', 'bilinear')
    if 'mean' in data:
        out.update(mean=tuple(float(f'{m / 255:.10g}') for m in data['mean']),
                   std=tuple(float(f'{s / 255:.10g}') for s in data['std']))
    return out


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

    The overlay carries the student's preprocessing (:func:`timm_data_cfg`), so
    ``timm.data.resolve_data_config(model=model)`` gives the transform kdzoo applies.
    ``num_classes`` goes into it too: timm drops the classifier of a file whose class
    count differs from its pretrained config's, and would leave it random."""
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
    else:
        student = cfg.model.student
        if isinstance(student, str):
            name, kwargs = student[len('timm:'):], {}
        else:
            kwargs = {k: v for k, v in student.to_dict().items()
                      if k not in ('type', 'model_name', 'pretrained')}
            name = student['model_name']
    overlay.update(timm_data_cfg(cfg, net))
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


def mmpretrain_pipeline(cfg, net):
    """The student's test pipeline (:func:`inference_pipeline`) in mmpretrain's
    transforms; a step mmpretrain does not have is a ConfigError."""
    from mmpretrain.registry import TRANSFORMS

    from .inference import step_type
    steps = []
    for step in inference_pipeline(cfg, net):
        kind = step_type(step)
        if str(step['type']).startswith('kdzoo.') or TRANSFORMS.get(kind) is None:
            raise ConfigError(f"the test pipeline's {step['type']} is not an mmpretrain "
                              'transform; use --to kdzoo')
        steps.append(dict(step, type=kind))
    return steps


def mmpretrain_config(cfg, net):
    """The mmpretrain config of the student: the ImageClassifier (with the data
    preprocessor) and ``test_dataloader.dataset.pipeline``, which mmpretrain's
    ``ImageClassificationInferencer`` applies to images of any size."""
    return dict(model=mmpretrain_model_cfg(cfg, net),
                test_dataloader=dict(dataset=dict(type='CustomDataset',
                                                  pipeline=mmpretrain_pipeline(cfg, net))))


def mmpretrain_payload(cfg, state, config_name):
    """The ``--to mmpretrain`` file, in mmpretrain's checkpoint layout: ``state_dict``
    and ``meta.dataset_meta.classes`` (which ``mmpretrain.apis.get_model`` gives the
    model, and its inferencer the results)."""
    from kdzoo.version import __version__

    from .inference import class_names_of
    classes = class_names_of(cfg)
    meta = dict(kdzoo_version=__version__, config=config_name)
    if classes:
        meta['dataset_meta'] = dict(classes=list(classes))
    return dict(state_dict=mmpretrain_state(state), meta=meta)


def mmpretrain_code(cfg, net, file):
    full = mmpretrain_config(cfg, net)
    model = pprint.pformat(full['model'], width=88, sort_dicts=False)
    model = model.replace('\n', '\n' + ' ' * len('model_cfg = '))
    pipeline = full['test_dataloader']['dataset']['pipeline']
    steps = ''.join(f'    {step!r},\n' for step in pipeline)
    return ('from mmengine.config import Config\n'
            'from mmpretrain.apis import get_model\n'
            f'model_cfg = {model}\n'
            f'pipeline = [\n{steps}]\n'
            'cfg = Config(dict(model=model_cfg, test_dataloader=dict(\n'
            "    dataset=dict(type='CustomDataset', pipeline=pipeline))))\n"
            f"model = get_model(cfg, pretrained={file!r}, device='cpu')\n"
            '# images of any size (paths or BGR arrays), classes from the file:\n'
            '# from mmpretrain.apis import ImageClassificationInferencer\n'
            f'# ImageClassificationInferencer(model=cfg, pretrained={file!r})'
            "('cat.jpg')\n")


def kdzoo_code(cfg, net, kind, file):
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
        try:
            data = timm_data_cfg(cfg, net)
        except ConfigError as e:  # the kdzoo file still holds any student
            return code + f'# (not loadable with timm alone: {e})\n'
        over = ', '.join(f'{k}={v!r}' for k, v in dict(file=file, **data).items())
        code += ('# or, with timm (kdzoo imported registers the DearKD models; the overlay\n'
                 "# carries the student's preprocessing for timm.data.resolve_data_config):\n"
                 f'# timm.create_model({"dearkd_" + arch!r}{args}, pretrained=True, '
                 f'pretrained_cfg_overlay=dict({over}))\n')
    return code


def kdzoo_payload(cfg, net, state, config_name):
    """The ``--to kdzoo`` file: the student's tensors, and its build config, data
    preprocessing, test pipeline (completed for any image size, as the Predictor applies
    it) and class names as JSON strings (weights_only reads them)."""
    from kdzoo.version import __version__

    from .inference import class_names_of
    student = cfg.model.student
    student = student.to_dict() if hasattr(student, 'to_dict') else student
    return dict(state_dict=state, kdzoo=dict(
        format=KDZOO_FORMAT, version=__version__, config=config_name,
        student=json.dumps(student), data_preprocessor=json.dumps(_data_settings(cfg)),
        test_pipeline=json.dumps(inference_pipeline(cfg, net)),
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
        payload = mmpretrain_payload(cfg, state, osp.basename(config))
        make_code = lambda f: mmpretrain_code(cfg, net, f)  # noqa: E731
    elif to == 'timm':
        payload, make_code = state, lambda f: timm_call(cfg, net, kind, f)
    else:
        payload = kdzoo_payload(cfg, net, state, osp.basename(config))
        make_code = lambda f: kdzoo_code(cfg, net, kind, f)  # noqa: E731
    make_code('')  # settings a layout cannot express are refused before writing
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
    # mmengine's load_checkpoint prints 'Loads checkpoint ...' of the temporary file
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, namespace)  # the code that was generated above, not user input
    model = namespace['model'].eval()
    if mmpretrain:  # the printed config's test pipeline builds with its inferencer
        from mmpretrain.apis import ImageClassificationInferencer
        ImageClassificationInferencer(model=model)
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
