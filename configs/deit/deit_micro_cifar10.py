# CPU-scale student for the CIFAR-10 comparison in README.md: a DeiT-style ViT of width
# 128 (4 heads, depth 4, 4x4 patches at 32x32; 0.8M parameters) trained on a class-balanced
# 10% subset of the training images (500 per class) for 20 epochs, no distillation.
# Recipe otherwise that of deit_ti_cifar10.py.
_base_ = ['./deit_ti_cifar10.py']

max_epochs = 20
model = dict(model=dict(arch=None, embed_dim=128, num_heads=4, depth=4))
train_dataloader = dict(dataset=dict(subset_ratio=0.1, subset_seed=0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 2, eta_min=1e-5, by_epoch=True, begin=2,
         end=max_epochs, convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
