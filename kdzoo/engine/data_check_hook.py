"""Checks, before any step, that the data fits the model and the schedule has steps."""
import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from kdzoo.registry import HOOKS


def check_schedule(loop):
    """Refuse a training loop without a step: ``max_epochs=0``/``max_iters=0``, or fewer
    images than one batch with ``drop_last``. Such a run would end at once, exit 0 and
    save nothing (or fail inside a parameter scheduler with "epoch_length must be a
    positive integer, but got 0"). Called by kdzoo's Runner when it builds the loop."""
    loader = loop.dataloader
    if len(loader) == 0:
        dataset = loader.dataset
        root = getattr(dataset, 'data_root', '') or getattr(dataset, 'data_prefix', '')
        raise ValueError(
            f'the training data ({root}: {len(dataset)} images) gives no iteration per '
            f'epoch at batch size {loader.batch_size} with drop_last='
            f'{getattr(loader, "drop_last", None)}: lower the batch size, set '
            'drop_last=False or add images')
    if loop.max_iters <= 0:
        raise ValueError(
            f'the schedule has no training step: max_epochs='
            f'{getattr(loop, "max_epochs", None)}, max_iters={loop.max_iters} (train_cfg); '
            'set train_cfg.max_epochs (or max_iters) to at least 1')


def check_sample_state(model, dataset):
    """Refuse a run whose per-sample state does not fit the training set.

    A distillation loss that keeps state per training sample (CRD's memory bank, read
    through the ``indices`` source) declares its size as ``num_samples``; it must be the
    training set's length, else the indices of the data would miss or overrun it.
    """
    model = model.module if is_model_wrapper(model) else model
    terms = getattr(model, 'terms', None) or {}
    for name, term in terms.items():
        size = getattr(term.loss, 'num_samples', None)
        if isinstance(size, int) and size != len(dataset):
            root = getattr(dataset, 'data_root', '') or getattr(dataset, 'data_prefix', '')
            raise ValueError(
                f'distillation term {name!r} ({type(term.loss).__name__}) keeps state for '
                f'num_samples={size} training samples, but the training data ({root}) has '
                f'{len(dataset)}: set its loss num_samples={len(dataset)}')


@HOOKS.register_module()
class DataCheckHook(Hook):
    """Stops a run before its first step when a dataset's classes do not fit the model.

    Labels index the dataset's class list, so a model (or a data preprocessor) with fewer
    classes would fail at the first batch that holds a label beyond them ("Class values
    must be smaller than num_classes", without numbers), or at the hour when such a label
    first turns up; more classes would train outputs that no image ever targets.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner):
        self._check(runner, runner.train_dataloader, 'train')
        check_sample_state(runner.model, runner.train_dataloader.dataset)
        if runner.val_loop is not None:
            self._check(runner, runner.val_dataloader, 'val')

    def before_test(self, runner):
        self._check(runner, runner.test_dataloader, 'test')

    @staticmethod
    def _check(runner, loader, split):
        dataset = getattr(loader, 'dataset', None)
        classes = getattr(dataset, 'metainfo', {}).get('classes')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        expected = getattr(model, 'num_classes', None)
        if not isinstance(expected, int):
            return
        root = getattr(dataset, 'data_root', '') or getattr(dataset, 'data_prefix', '')
        if classes is not None and len(classes) != expected:
            raise ValueError(
                f'the {split} data ({root}) has {len(classes)} classes but the model predicts '
                f'{expected}: set num_classes={len(classes)} in the model (the student and, '
                'if any, the teacher) and in data_preprocessor')
        # Class folders give labels below their count; an annotation file may not.
        labels = np.asarray(dataset.get_gt_labels() if hasattr(dataset, 'get_gt_labels')
                            else [])
        if labels.size and int(labels.max()) >= expected:
            raise ValueError(f'the {split} data ({root}) has label {int(labels.max())}, but '
                             f'the model predicts {expected} classes (labels 0 to '
                             f'{expected - 1}): set num_classes in the model and in '
                             'data_preprocessor, or check the annotation file')
        pre = getattr(model, 'data_preprocessor', None)
        pre_classes = getattr(pre, 'num_classes', None)
        if isinstance(pre_classes, int) and classes is not None and \
                pre_classes != len(classes):
            raise ValueError(f'data_preprocessor.num_classes is {pre_classes} but the {split} '
                             f'data ({root}) has {len(classes)} classes; set it to '
                             f'{len(classes)}')
