# CIFAR-100 for CNN students as the classic distillation tables train them (Tian et al.
# ICLR 2020): random crop with 4 px padding, horizontal flip, batch 64. The images in the
# class-folder layout at data/cifar100/{train,test}/<class>/*.jpg (made like CIFAR-10's:
# `kdzoo prepare-cifar10 --archive cifar100-jpeg.tar.gz --out data/cifar100`); mean and std
# of the CIFAR-100 training images.
_base_ = ['./cifar10_cnn.py']
data_root = 'data/cifar100'
data_preprocessor = dict(num_classes=100, mean=[129.304, 124.070, 112.434],
                         std=[68.170, 65.392, 70.418])
train_dataloader = dict(batch_size=64, dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=256, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
