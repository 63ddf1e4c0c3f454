# DF-DearKD's image synthesis from the ImageNet RegNetY-16GF teacher (Chen et al., DearKD,
# CVPR 2022, section 4): DeepInversion (Yin et al., CVPR 2020) for 2000 iterations at
# 112 px then 2000 at 224 px, alpha_TV 1e-4, alpha_l2 1e-5, alpha_BN 5e-2, and the
# boundary-preserving intra-divergence loss with alpha_ep 50 and alpha_triplet 0.5 on the
# teacher's pooled features (the input of head.fc, 3024-d). The teacher is the config's
# model.teacher. Settings the paper does not give (kdzoo's choices, see
# configs/dearkd/README.md): the image count, batch, lr, betas, jitter, first-BN factor,
# the form of L_ep and the margin. Run: python tools/synthesize.py CONFIG.
synthesis = dict(
    out='data/df_imagenet_synth',
    num_images=100 * 1000,
    batch_size=256,
    per_class_in_batch=4,  # 64 classes x 4 images per batch, for the intra-class terms
    seed=0,
    synthesizer=dict(
        type='DeepInversionSynthesizer',
        stages=[dict(size=112, iterations=2000, jitter=15),
                dict(size=224, iterations=2000, jitter=30)],
        lr=0.25, betas=(0.5, 0.9), eta_min=0.0,
        alpha_ce=1.0, alpha_bn=5e-2, first_bn_multiplier=10.0,
        alpha_tv=1e-4, alpha_tv_l1=0.0, alpha_l2=1e-5,
        diversity=dict(type='IntraDivergenceLoss', alpha_ep=50.0, alpha_triplet=0.5,
                       margin=1.0, ep_form='inverse', normalize=False),
        feature_layer='head.fc',
        flip=True, upsample='bilinear',
        bf16=None),  # None: the run's precision (env_cfg.precision, --amp/--fp32)
    grid=dict(per_class=8, max_classes=20),
)
