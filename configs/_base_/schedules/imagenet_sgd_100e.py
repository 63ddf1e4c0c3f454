# The classic ImageNet schedule of the CNN distillation tables: 100 epochs of SGD, momentum
# 0.9, weight decay 1e-4, lr 0.1 for the global batch 256, divided by 10 at epochs 30, 60
# and 90.
optim_wrapper = dict(type='OptimWrapper', constructor='kdzoo.DistillerOptimWrapperConstructor',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
