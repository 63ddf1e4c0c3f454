# DeepInversion synthesis from a CIFAR-10 CNN teacher (tools/synthesize.py): the paper's
# ImageNet recipe with the resolutions scaled from 112/224 to 16/32 px; alpha_TV 1e-4,
# alpha_L2 1e-5, alpha_BN 5e-2, alpha_ep 50, alpha_triplet 0.5 on the teacher's pooled
# features (the input of fc).
classes = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
           'truck')
synthesis = dict(
    out='data/df_cifar10_synth',
    num_images=50000,
    batch_size=250,
    per_class_in_batch=25,  # every batch: 10 classes x 25 images
    seed=0,
    synthesizer=dict(
        type='DeepInversionSynthesizer',
        stages=[dict(size=16, iterations=2000, jitter=1),
                dict(size=32, iterations=2000, jitter=2)],
        lr=0.1, betas=(0.5, 0.9), eta_min=0.0,
        alpha_ce=1.0, alpha_bn=5e-2, first_bn_multiplier=10.0,
        alpha_tv=1e-4, alpha_tv_l1=0.0, alpha_l2=1e-5,
        diversity=dict(type='IntraDivergenceLoss', alpha_ep=50.0, alpha_triplet=0.5,
                       margin=1.0, ep_form='inverse', normalize=False),
        feature_layer='fc',
        flip=True, upsample='bilinear',
        bf16=None),  # None: the run's precision (env_cfg.precision, --amp/--fp32)
    grid=dict(per_class=8, max_classes=10),
)
