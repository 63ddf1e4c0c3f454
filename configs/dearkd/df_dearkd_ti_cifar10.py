# DF-DearKD-Ti on CIFAR-10: DearKD-Ti at 32x32 (./dearkd_ti_cifar10.py) trained on 50000
# images (the size of the real training set) synthesised from its ResNet-20 teacher (the
# last checkpoint of work_dirs/resnet20_cifar10) with 2000 + 2000 iterations at 16/32 px;
# validation on the real CIFAR-10 test set.
#   python tools/synthesize.py configs/dearkd/df_dearkd_ti_cifar10.py
#   python tools/train.py configs/dearkd/df_dearkd_ti_cifar10.py
_base_ = ['./dearkd_ti_cifar10.py', '../_base_/synthesis/df_cifar10.py']

synth_root = 'data/df_cifar10_synth'
synthesis = dict(out=synth_root)
train_dataloader = dict(dataset=dict(data_root=synth_root, data_prefix=''))
