# CNN teacher for the CIFAR-10 students: ResNet-20 (He et al. 2016) trained on the full
# CIFAR-10 training set with crop + flip, SGD with nesterov momentum and a cosine schedule.
# Its checkpoints (work_dirs/resnet20_cifar10) are the teacher of the *_cifar10 students.
_base_ = ['../_base_/datasets/cifar10_deit.py', '../_base_/default_runtime.py']

max_epochs = 5
model = dict(
    type='Classifier',
    student=dict(type='CifarResNet', depth=20, widths=(16, 32, 64), num_classes=10),
    channels_last=True,  # oneDNN's convolutions prefer it (kdzoo/models/classifier.py)
    criterion=dict(type='LabelSmoothCrossEntropy', label_smoothing=0.0),
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10,
                           mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255],
                           to_rgb=True),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True,
                                    weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=0, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(save_last=True))
