# The DeiT recipe for CIFAR-10 at batch 128: AdamW, lr 5e-4 x 128/512, weight decay 0.05
# (none on norms, biases, tokens, position embeddings and MHCA's positional weights),
# 100 epochs with 5 warm-up epochs and cosine decay.
max_epochs = 100
optim_wrapper = dict(
    type='OptimWrapper',
    # The frozen teacher stays out of the optimizer.
    constructor='kdzoo.DistillerOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=5e-4 * 128 / 512, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'.cls_token': dict(decay_mult=0.0),
                                    '.dist_token': dict(decay_mult=0.0),
                                    '.pos_embed': dict(decay_mult=0.0),
                                    '.rel_pos_weight': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, eta_min=1e-5, by_epoch=True, begin=5,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
