# DF-DearKD-Ti on CIFAR-10: DearKD-Ti at 32x32 (./dearkd_ti_cifar10.py) trained on 50000
# images (the size of the real training set) synthesised from its ResNet-20 teacher (the
# last checkpoint of work_dirs/resnet20_cifar10); validation on the real CIFAR-10 test set.
# Synthesis as the paper's ImageNet recipe with the resolutions scaled from 112/224 to
# 16/32 px: 2000 + 2000 iterations, alpha_TV 1e-4, alpha_l2 1e-5, alpha_BN 5e-2,
# alpha_ep 50, alpha_triplet 0.5 on the teacher's pooled features (the input of fc).
#   python tools/synthesize.py configs/dearkd/df_dearkd_ti_cifar10.py
#   python tools/train.py configs/dearkd/df_dearkd_ti_cifar10.py
_base_ = ['./dearkd_ti_cifar10.py']

classes = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
           'truck')
synth_root = 'data/df_cifar10_synth'
synthesis = dict(
    out=synth_root,
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
        flip=True, upsample='bilinear', bf16=False),
    grid=dict(per_class=8, max_classes=10),
)
train_dataloader = dict(dataset=dict(data_root=synth_root, data_prefix=''))
