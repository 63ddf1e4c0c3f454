# DeiT recipe (Touvron et al. 2021, Table 9): AdamW, lr 5e-4 x batch / 512, weight decay
# 0.05, 300 epochs, 5 warm-up epochs, cosine decay; global batch 1024 (8 GPUs x 128).
optim_wrapper = dict(
    type='OptimWrapper',
    # The frozen teacher stays out of the optimizer.
    constructor='kdzoo.DistillerOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.dist_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
            # MHCA's positional term, like pos_embed (DearKD students).
            '.rel_pos_weight': dict(decay_mult=0.0),
        }),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=295, eta_min=1e-5, by_epoch=True, begin=5, end=300),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr above is for the global batch 1024; --auto-scale-lr rescales it for other batches.
auto_scale_lr = dict(base_batch_size=1024)
