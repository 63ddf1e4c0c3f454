# The classic CIFAR-100 distillation schedule (Tian et al. ICLR 2020, and the tables that
# follow it): 240 epochs of SGD, momentum 0.9, weight decay 5e-4, lr 0.05 (0.01 for the
# ShuffleNet/MobileNet students, not in kdzoo) divided by 10 at epochs 150, 180 and 210.
max_epochs = 240
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210],
                        gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
val_cfg = dict()
test_cfg = dict()
