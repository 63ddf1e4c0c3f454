"""Contrastive representation distillation (CRD).

Tian, Krishnan and Isola, "Contrastive Representation Distillation", ICLR 2020, section 3
(eqs. 9-18). Both networks' features are embedded (a linear map and L2 normalisation per
side: ``g_S(s)``, ``g_T(t)``) and contrasted with the noise-contrastive critic

    ``h(t, s) = P(t, s) / (P(t, s) + N / M)``,  ``P(t, s) = exp(g_T(t) . g_S(s) / tau) / Z``

where ``N`` is the number of negatives per sample, ``M`` the training set's size and ``Z``
a normalisation constant (the paper's eq. 19 writes ``exp(...)`` for ``P``; the
reference code divides by ``Z``, estimated once, and so does kdzoo). A sample's positive
is the other side's embedding of the same training sample, its negatives those of N other
samples; both are read from memory banks that keep one embedding per training sample and
side. The loss of one side is

    ``-(1 / B) sum_i [log h(pos_i) + sum_{k=1..N} log(1 - h(neg_ik))]``

(eq. 18's bound, negated and averaged over the batch), and CRD adds both sides: the
student's embedding against the teacher bank and the teacher's embedding against the
student bank (the reference code's ``s_loss + t_loss``).

The details follow the authors' released code (RepDistiller, ``crd/``; its
``train_student.py`` defaults give the hyper-parameters here: feat_dim 128, 16384
negatives, temperature 0.07, momentum 0.5; its CIFAR-100 scripts weigh CRD by 0.8 next to
the cross-entropy, which is the term's ``weight`` here):

- Memory banks: two ``(num_samples, feat_dim)`` buffers, ``memory_student`` and
  ``memory_teacher``, initialised uniformly in ``[-a, a]``, ``a = 1 / sqrt(feat_dim / 3)``
  (rows of unit norm on average). After the loss is computed (so that the positives read
  the banks as they were), each batch sample's row becomes
  ``normalise(momentum * row + (1 - momentum) * embedding)``, without gradient. Only in
  training mode (``module.train()``), so an evaluation of the loss leaves them alone.
- ``Z``: estimated on the first batch as ``M * mean(exp(score / tau))`` over all of that
  batch's positive and negative scores, per side (``Z_S`` for the student's embedding
  against the teacher bank, ``Z_T`` for the teacher's against the student bank), and fixed
  from then on, without gradient. kdzoo keeps ``log Z`` in the buffer ``log_z`` (2,) (NaN
  = not yet estimated), so it is saved in and resumed from checkpoints; ``Z`` itself would
  overflow float32 at small temperatures.

Where kdzoo departs from the reference code or chooses what the paper leaves open:

- Negatives are drawn uniformly, with replacement, from the training indices other than
  the sample's own (:meth:`CRDLoss.sample_negatives`), with torch's global generator (on
  the indices' device), and the same negatives serve both sides. The reference's memory
  draws from all indices, the positive's included; its CIFAR-100 loader (mode 'exact')
  instead draws negatives from the images of other classes, which needs the labels of the
  whole training set; kdzoo uses neither.
- Everything is computed in log space, without the reference's 1e-7 in the denominators:
  ``log h = log P - logaddexp(log P, log(N / M))`` and
  ``log(1 - h) = log(N / M) - logaddexp(log P, log(N / M))``, so the loss is finite for
  any scores; in float32, also under bf16 autocast (the features are cast with
  ``.float()`` and autocast is off inside).
- Features: a (B, C, H, W) map is averaged over its positions first (global average
  pooling; the reference embeds the networks' pooled penultimate features), a (B, C)
  vector is used as it is, and (B, N, C) tokens are averaged over the tokens after the
  first ``num_prefix_tokens`` (class/distillation tokens). C must equal
  ``student_channels`` / ``teacher_channels``: kdzoo fills those in only for connectors,
  so the config gives them.
- Under DistributedDataParallel the banks stay identical on every rank: the embeddings and
  indices of all ranks are all-gathered for the update (and the first batch's scores of
  all ranks estimate Z). Each rank draws its own negatives. DDP broadcasts the buffers
  from rank 0 when it wraps the model, so the banks start equal too. A sample that occurs
  more than once in the (gathered) batch updates its rows once, with its last occurrence
  (rank order, then batch order); the reference leaves that to ``index_copy_``.
- The scores: the N negatives' rows are gathered from the bank (B x N x feat_dim), or,
  when the bank has fewer rows than N x feat_dim, all of the bank is scored against the
  batch and the negatives' scores picked from that (less memory: a copy of the bank, which
  the product's backward needs after the in-place update); the two agree up to float32
  rounding.
"""
import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS
from .logit_distill import check_number


def check_int(owner, name, value, minimum):
    """Raise a ValueError naming ``owner``'s argument ``name`` unless ``value`` is an int
    (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'{owner}: {name} must be an integer >= {minimum}, got {value!r}')


def prefix_tokens_pair(owner, value):
    """(student, teacher) numbers of prefix tokens from an int (both) or a pair."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f'{owner}: num_prefix_tokens must be an integer >= 0 or a pair '
                         f'(student, teacher) of them, got {value!r}')
    for v in pair:
        check_int(owner, 'num_prefix_tokens', v, 0)
    return pair


def pooled_features(owner, side, features, channels, num_prefix_tokens):
    """(B, C) float32 features of a (B, C, H, W) map (averaged over its positions), a
    (B, C) vector (as it is) or (B, N, C) tokens (averaged over the tokens after the first
    ``num_prefix_tokens``); C must be ``channels``."""
    x = features.float()
    if x.dim() == 4:
        width, x = x.shape[1], x.mean(dim=(2, 3))
    elif x.dim() == 2:
        width = x.shape[1]
    elif x.dim() == 3:
        width = x.shape[2]
        if x.shape[1] <= num_prefix_tokens:
            raise ValueError(f'{owner}: {side} tokens {tuple(x.shape)} have no token after '
                             f'the first num_prefix_tokens={num_prefix_tokens}')
        x = x[:, num_prefix_tokens:].mean(dim=1)
    else:
        raise ValueError(f'{owner}: {side} features {tuple(x.shape)} must be a (B, C, H, W) '
                         'map, (B, C) vectors or (B, N, C) tokens')
    if width != channels:
        raise ValueError(f'{owner}: {side} features {tuple(features.shape)} have {width} '
                         f'channels but {side}_channels={channels}; set {side}_channels to '
                         "the bound layer's width (C of (B, C, H, W), (B, C) or (B, N, C))")
    return x


def distributed_world():
    """The world size when torch.distributed is initialised, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_gather_rows(tensor):
    """The rows of ``tensor`` from every rank, concatenated in rank order (batches of
    different sizes allowed); ``tensor`` itself without torch.distributed."""
    world = distributed_world()
    if world == 1:
        return tensor
    size = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    longest = max(sizes)
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[:tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def last_occurrences(indices):
    """Positions of the last occurrence of each distinct value of ``indices`` (1-D)."""
    unique, inverse = torch.unique(indices, return_inverse=True)
    positions = torch.arange(indices.shape[0], device=indices.device)
    last = torch.full((unique.shape[0],), -1, dtype=torch.long, device=indices.device)
    return last.scatter_reduce_(0, inverse, positions, reduce='amax')


def nce_loss(log_p, log_noise):
    """``-(1/B) sum_i [log h_i0 + sum_k log(1 - h_ik)]`` of ``h = P / (P + N/M)`` from
    ``log_p`` (B, 1 + N) (positive first) and ``log_noise = log(N / M)``, in log space."""
    log_denominator = torch.logaddexp(log_p, torch.full_like(log_p, log_noise))
    log_h_positive = log_p[:, 0] - log_denominator[:, 0]
    log_one_minus_h = log_noise - log_denominator[:, 1:]
    return -(log_h_positive.sum() + log_one_minus_h.sum()) / log_p.shape[0]


@MODELS.register_module()
class CRDLoss(nn.Module):
    """CRD's two-sided NCE loss with memory banks (Tian et al., ICLR 2020).

    ``forward(student_features, teacher_features, indices)``: the bound layers' features
    and the samples' indices in the training set (the ``indices`` source, (B,) int64).
    Trains its two embedding heads (``embed_student``, ``embed_teacher``); its state
    (``memory_student``, ``memory_teacher``, ``log_z``) is kept in buffers, so checkpoints
    save and resume it.

    Args:
        num_samples: the training set's size M, > 1 (one bank row per training sample;
            kdzoo checks it against the training data before the first step).
        student_channels: width C of the student's bound layer ((B, C, H, W), (B, C) or
            (B, N, C)); required, kdzoo does not fill it in for a loss.
        teacher_channels: width of the teacher's bound layer, likewise.
        feat_dim: the embedding size (128, the reference's).
        num_negatives: negatives per sample N (16384, the paper's and the reference's).
        temperature: tau, > 0 (0.07, the reference's).
        momentum: of the bank update, in [0, 1) (0.5, the reference's).
        num_prefix_tokens: class/distillation tokens at the front of (B, N, C) tokens,
            left out of their mean: an int for both sides or a pair (student, teacher).
    """

    def __init__(self, num_samples, student_channels, teacher_channels, feat_dim=128,
                 num_negatives=16384, temperature=0.07, momentum=0.5, num_prefix_tokens=0):
        super().__init__()
        check_int('CRDLoss', 'num_samples', num_samples, 2)
        check_int('CRDLoss', 'student_channels', student_channels, 1)
        check_int('CRDLoss', 'teacher_channels', teacher_channels, 1)
        check_int('CRDLoss', 'feat_dim', feat_dim, 1)
        check_int('CRDLoss', 'num_negatives', num_negatives, 1)
        check_number('CRDLoss', 'temperature', temperature, 0, strict=True)
        if not (isinstance(momentum, (int, float)) and not isinstance(momentum, bool)
                and 0 <= momentum < 1):
            raise ValueError(f'CRDLoss: momentum must be a number in [0, 1), got {momentum!r}')
        self.prefix_tokens = prefix_tokens_pair('CRDLoss', num_prefix_tokens)
        self.num_samples = num_samples
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.feat_dim, self.num_negatives = feat_dim, num_negatives
        self.temperature, self.momentum = float(temperature), float(momentum)
        self.embed_student = nn.Linear(student_channels, feat_dim)
        self.embed_teacher = nn.Linear(teacher_channels, feat_dim)
        bound = 1 / math.sqrt(feat_dim / 3)
        for name in ('memory_student', 'memory_teacher'):
            self.register_buffer(name, torch.rand(num_samples, feat_dim) * (2 * bound) - bound)
        self.register_buffer('log_z', torch.full((2,), float('nan')))
        self._z_known = False  # whether log_z has been read since construction or loading

    # ----- randomness ---------------------------------------------------------------------
    def sample_negatives(self, indices):
        """(B, num_negatives) int64 training indices, uniform over those other than each
        sample's own, with replacement, from torch's global generator."""
        draws = torch.randint(0, self.num_samples - 1, (indices.shape[0], self.num_negatives),
                              device=indices.device)
        return draws + (draws >= indices.unsqueeze(1)).long()

    # ----- the loss -----------------------------------------------------------------------
    def forward(self, student_features, teacher_features, indices):
        indices = self._check_indices(indices, student_features.shape[0],
                                      teacher_features.shape[0])
        device_type = student_features.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            student = pooled_features('CRDLoss', 'student', student_features,
                                      self.student_channels, self.prefix_tokens[0])
            teacher = pooled_features('CRDLoss', 'teacher', teacher_features.detach(),
                                      self.teacher_channels, self.prefix_tokens[1])
            f_s = F.normalize(self.embed_student(student), dim=1)
            f_t = F.normalize(self.embed_teacher(teacher), dim=1)
            negatives = self.sample_negatives(indices)
            # The student's embedding against the teacher bank, and the other way round.
            s_s = self._scores(f_s, self.memory_teacher, indices, negatives)
            s_t = self._scores(f_t, self.memory_student, indices, negatives)
            log_z = self._log_z(s_s, s_t)
            log_noise = math.log(self.num_negatives / self.num_samples)
            loss = nce_loss(s_s - log_z[0], log_noise) + nce_loss(s_t - log_z[1], log_noise)
            if self.training:
                self._update_banks(f_s.detach(), f_t.detach(), indices)
        return loss

    def _check_indices(self, indices, batch, teacher_batch):
        if batch != teacher_batch:
            raise ValueError(f'CRDLoss: the student features hold {batch} samples but the '
                             f'teacher features {teacher_batch}')
        if not torch.is_tensor(indices) or indices.dim() != 1 or indices.shape[0] != batch:
            shape = tuple(indices.shape) if torch.is_tensor(indices) else type(indices).__name__
            raise ValueError(f'CRDLoss: indices {shape} must be the samples\' dataset indices '
                             f'of shape ({batch},)')
        if indices.dtype.is_floating_point or indices.dtype.is_complex or \
                indices.dtype == torch.bool:
            raise ValueError(f'CRDLoss: indices must be integer dataset indices, got '
                             f'{indices.dtype}')
        bad = (indices < 0) | (indices >= self.num_samples)
        if bad.any():
            value = indices[bad][0].item()
            raise ValueError(f'CRDLoss: dataset index {value} is out of range [0, '
                             f'{self.num_samples - 1}]: num_samples ({self.num_samples}) must '
                             "be the training set's size")
        return indices.long()

    def _scores(self, anchors, bank, indices, negatives):
        """(B, 1 + N) scores ``anchor . row / tau``: the sample's own row first, then its
        negatives' rows."""
        positive = (bank[indices] * anchors).sum(dim=1, keepdim=True)
        if bank.shape[0] <= self.num_negatives * self.feat_dim:
            # The product's backward reads the bank, which the update changes in place
            # before it: a copy (indexing, as below and above, copies the rows anyway).
            whole = bank.clone() if anchors.requires_grad else bank
            negative = (anchors @ whole.t()).gather(1, negatives)
        else:
            negative = torch.bmm(bank[negatives], anchors.unsqueeze(2)).squeeze(2)
        return torch.cat([positive, negative], dim=1) / self.temperature

    def _log_z(self, s_s, s_t):
        """``log_z``, estimated from this batch's scores (all ranks') if not yet set."""
        if not self._z_known:
            if torch.isnan(self.log_z).any():  # one device synchronisation per load
                self.log_z.copy_(self._estimate_log_z(s_s.detach(), s_t.detach()))
            self._z_known = True
        return self.log_z

    def _estimate_log_z(self, s_s, s_t):
        """``log(M * mean(exp(scores)))`` per side, over the scores of every rank."""
        local = torch.stack([torch.logsumexp(s_s.flatten().double(), 0),
                             torch.logsumexp(s_t.flatten().double(), 0),
                             torch.tensor(float(s_s.numel()), dtype=torch.float64,
                                          device=s_s.device)])
        every = all_gather_rows(local.unsqueeze(0))
        log_sums = torch.logsumexp(every[:, :2], dim=0)
        return (log_sums - every[:, 2].sum().log() + math.log(self.num_samples)).float()

    @torch.no_grad()
    def _update_banks(self, f_s, f_t, indices):
        """Move every (all-gathered) batch sample's rows towards its new embeddings."""
        rows = all_gather_rows(torch.cat([f_s, f_t], dim=1))
        indices = all_gather_rows(indices)
        keep = last_occurrences(indices)
        rows, indices = rows[keep], indices[keep]
        d = self.feat_dim
        for bank, new in ((self.memory_student, rows[:, :d]), (self.memory_teacher, rows[:, d:])):
            mixed = bank[indices] * self.momentum + new * (1 - self.momentum)
            bank.index_copy_(0, indices, F.normalize(mixed, dim=1))

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._z_known = False  # read the loaded log_z (it may be unset) at the next step

    def extra_repr(self):
        return (f'num_samples={self.num_samples}, feat_dim={self.feat_dim}, '
                f'num_negatives={self.num_negatives}, temperature={self.temperature}, '
                f'momentum={self.momentum}')
