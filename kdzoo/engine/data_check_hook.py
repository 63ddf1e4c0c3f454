"""Checks, before any step, that the data fits the model."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from kdzoo.registry import HOOKS


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
        if classes is None or not isinstance(expected, int):
            return
        root = getattr(dataset, 'data_root', '') or getattr(dataset, 'data_prefix', '')
        if len(classes) != expected:
            raise ValueError(
                f'the {split} data ({root}) has {len(classes)} classes but the model predicts '
                f'{expected}: set num_classes={len(classes)} in the model (the student and, '
                'if any, the teacher) and in data_preprocessor')
        pre = getattr(model, 'data_preprocessor', None)
        pre_classes = getattr(pre, 'num_classes', None)
        if isinstance(pre_classes, int) and pre_classes != len(classes):
            raise ValueError(f'data_preprocessor.num_classes is {pre_classes} but the {split} '
                             f'data ({root}) has {len(classes)} classes; set it to '
                             f'{len(classes)}')
