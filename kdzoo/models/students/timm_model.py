"""Any timm classifier as a kdzoo network (student or teacher), by name."""
import difflib

from kdzoo.registry import MODELS


@MODELS.register_module(name='TimmModel')
def timm_model(model_name, pretrained=False, **kwargs):
    """``timm.create_model(model_name, pretrained=pretrained, **kwargs)``.

    Use it as ``student=dict(type='TimmModel', model_name='vit_tiny_patch16_224',
    img_size=32, patch_size=4, num_classes=10)`` or ``model_name='resnet18'`` for
    CNN-to-CNN distillation; the distillation terms read its submodules by their timm names
    (``blocks.7``, ``layer3``). timm's distilled DeiTs (``deit_*_distilled_*``) keep both
    heads: the class head is ``student.cls_logits``, the distillation head
    ``student.dist_logits``.
    """
    import timm
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
        raise ValueError(f'timm has no model {model_name!r}'
                         + (f'; did you mean {close}?' if close else ''))
    return timm.create_model(model_name, pretrained=pretrained, **kwargs)
