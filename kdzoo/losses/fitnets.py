"""FitNets hints: the regressed student layer against the teacher's hint layer.

Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, eq. (3): with the teacher's
hint layer ``u_h`` and the student's guided layer ``v_g`` passed through a regressor ``r``,

    L_HT = 1/2 || u_h(x) - r(v_g(x)) ||^2.

The regressor is not part of this loss: in kdzoo it is the term's connector on the
student's argument, applied before the loss and trained with the student (a
:class:`~kdzoo.models.connectors.ConvConnector` for a CNN map, an
:class:`~kdzoo.models.aligner.Aligner` for a transformer's tokens), e.g.::

    distill=dict(hint=dict(loss=dict(type='FitNetsLoss'), weight=100.0,
                           inputs=dict(student_features='student.layer2',
                                       teacher_features='teacher.layer2'),
                           connectors=dict(student_features=dict(type='ConvConnector'))))

Where kdzoo departs from the paper:

- The squared distance is averaged over the elements (batch x channels x positions), not
  summed and halved, as common reference code does (a mean squared error); the scale goes
  into the term's weight.
- The paper trains the hint in a separate first stage (student layers up to the guided
  layer and the regressor, on the hint loss alone) and then the whole student with KD.
  The common benchmark form, which kdzoo's term gives directly, adds the hint as a term to
  the student's loss from the start: mdistiller's CIFAR-100 setting weighs it 100
  (``CFG.FITNET.LOSS.FEAT_WEIGHT``) next to the cross-entropy with weight 1. The two-stage
  recipe is a stage schedule of the terms (kdzoo's ``DistillStageHook``).

This module also holds the argument checks shared by kdzoo's feature losses
(:func:`feature_pairs`).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS


def check_feature_tensor(owner, name, value):
    """Raise a ValueError unless ``value`` is a floating-point tensor with a batch
    dimension and at least one feature dimension."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f'{owner}: {name} must be a tensor (or a list of tensors where the '
                         f'loss takes several layers), got {type(value).__name__}')
    if not value.dtype.is_floating_point:
        raise ValueError(f'{owner}: {name} must be floating-point features, got {value.dtype}')
    if value.dim() < 2:
        raise ValueError(f'{owner}: {name} {tuple(value.shape)} must be (batch, ...) '
                         'features with at least 2 dimensions')


def feature_pairs(owner, student_features, teacher_features, allow_lists=False):
    """[(student, teacher)] tensors of one or (``allow_lists``) several layer pairs, each
    checked by :func:`check_feature_tensor` and with equal batch sizes."""
    many = isinstance(student_features, (list, tuple)), isinstance(teacher_features,
                                                                   (list, tuple))
    if any(many):
        if not allow_lists:
            raise ValueError(f'{owner}: takes one student layer and one teacher layer; bind '
                             'each argument to a single source, not a list')
        if not all(many) or len(student_features) != len(teacher_features) \
                or not student_features:
            raise ValueError(f'{owner}: student and teacher features must both be tensors or '
                             'both be non-empty lists of the same length (one pair of layers '
                             'per entry)')
        pairs = list(zip(student_features, teacher_features))
    else:
        pairs = [(student_features, teacher_features)]
    for i, (s, t) in enumerate(pairs):
        at = f'[{i}]' if any(many) else ''
        check_feature_tensor(owner, f'student_features{at}', s)
        check_feature_tensor(owner, f'teacher_features{at}', t)
        if s.shape[0] != t.shape[0]:
            raise ValueError(f'{owner}: student features{at} {tuple(s.shape)} and teacher '
                             f'features {tuple(t.shape)} have different batch sizes')
    return pairs


def power_of_two_scaled(x, dims=None):
    """``x`` times the power of two that brings its largest magnitude (over ``dims``, all
    dimensions if None; detached) into [1/2, 1): an exact rescaling (no rounding, barring
    underflow of values ~2^-126 below the largest), for losses invariant to the scale."""
    top = x.detach().abs()
    top = top.amax() if dims is None else top.amax(dim=dims, keepdim=True)
    _, exponent = torch.frexp(torch.where(top > 0, top, torch.ones_like(top)))
    return torch.ldexp(x, -exponent)


@MODELS.register_module()
class FitNetsLoss(nn.Module):
    """Mean over all elements of (regressed student - teacher hint)^2, in float32.

    Both inputs must have the same shape: the student's guided layer goes through a
    connector (the paper's regressor) to the teacher's width and size first. Computed in
    float32, also under bf16 autocast. The teacher's features are detached.
    """

    def forward(self, student_features, teacher_features):
        (s, t), = feature_pairs('FitNetsLoss', student_features, teacher_features)
        if s.shape != t.shape:
            raise ValueError(
                f'FitNetsLoss: the student features {tuple(s.shape)} do not match the teacher '
                f'features {tuple(t.shape)}; add a connector on student_features that maps '
                "the student's layer to the teacher's (the paper's regressor): "
                "connectors=dict(student_features=dict(type='ConvConnector')) for a CNN map, "
                "dict(type='Aligner') for transformer tokens")
        with torch.autocast(device_type=s.device.type, enabled=False):
            return F.mse_loss(s.float(), t.detach().float())
