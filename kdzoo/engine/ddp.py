"""DistributedDataParallel for distillers, on GPU or CPU."""
import torch
from mmengine.model import MMDistributedDataParallel

from kdzoo.models.teachers import TEACHER_CHILDREN
from kdzoo.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DistillerDDP(MMDistributedDataParallel):
    """MMDistributedDataParallel that works on CPU (gloo) and leaves the teacher alone.

    On CPU no ``device_ids`` are passed (DDP rejects them for CPU modules). The teacher's
    parameters and buffers (and those of named teachers) are excluded from DDP: they are never broadcast or
    all-reduced, since every rank loads the same frozen weights. A distiller keeps every
    trainable parameter in the graph at every step (a switched-off term's connectors with
    a zero gradient), so ``find_unused_parameters`` stays False: its search of the
    autograd graph costs on every step and makes torch warn at every run.
    """

    def __init__(self, module, detect_anomalous_params=False, find_unused_parameters=False,
                 **kwargs):
        if not torch.cuda.is_available() or next(module.parameters()).device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        names = []
        for child in TEACHER_CHILDREN:  # the teacher and any named teachers
            teacher = getattr(module, child, None)
            if teacher is not None:
                names += [f'{child}.{n}' for n, _ in teacher.named_parameters()]
                names += [f'{child}.{n}' for n, _ in teacher.named_buffers()]
        if names:
            self._set_params_and_buffers_to_ignore_for_model(module, names)
        if 'broadcast_buffers' not in kwargs:
            # Buffers are not re-broadcast before every forward (torch 2.14 deprecates
            # broadcast_buffers, and warns at every run that passes it).
            kwargs.setdefault('forward_sync_buffers', False)
        super().__init__(module=module, detect_anomalous_params=detect_anomalous_params,
                         find_unused_parameters=find_unused_parameters, **kwargs)

