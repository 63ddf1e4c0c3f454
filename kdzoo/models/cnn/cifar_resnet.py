"""ResNets for 32x32 inputs, the CNN teachers and students on CIFAR.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2: a 3x3
stem without max-pooling and three stages of basic blocks (depth = 6n + 2). ``widths``
makes the stages wider than the paper's 16/32/64 for a stronger teacher at equal depth.

The sizes of the classic distillation tables (Tian et al., "Contrastive Representation
Distillation", ICLR 2020, and the tables that follow it) are :data:`CIFAR_RESNETS`:
resnet8/20/32/56 with stages of 16/32/64, and the "x4" models resnet8x4/32x4 with a stem
of 32 and stages of 64/128/256.
"""
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.registry import MODELS


class BasicBlock(nn.Module):

    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


#: The CIFAR ResNets of the classic distillation tables: {name: constructor arguments}.
CIFAR_RESNETS = {
    'resnet8': dict(depth=8, widths=(16, 32, 64)),
    'resnet20': dict(depth=20, widths=(16, 32, 64)),
    'resnet32': dict(depth=32, widths=(16, 32, 64)),
    'resnet56': dict(depth=56, widths=(16, 32, 64)),
    'resnet110': dict(depth=110, widths=(16, 32, 64)),
    'resnet8x4': dict(depth=8, widths=(64, 128, 256), stem_width=32),
    'resnet32x4': dict(depth=32, widths=(64, 128, 256), stem_width=32),
}


@MODELS.register_module()
class CifarResNet(nn.Module):
    """CIFAR ResNet-(6n+2). Stages are ``stem``, ``layer1``..``layer3`` (32, 16, 8 px).

    Args:
        depth: 6n + 2 (n basic blocks per stage).
        widths: the three stages' widths.
        num_classes: the classifier's outputs.
        in_chans: input channels.
        stem_width: the stem's width (default: the first stage's).
        arch: one of :data:`CIFAR_RESNETS` (e.g. ``'resnet8x4'``), which sets ``depth``,
            ``widths`` and ``stem_width``; give either ``arch`` or those.
    """

    def __init__(self, depth=20, widths=(16, 32, 64), num_classes=10, in_chans=3,
                 stem_width=None, arch=None):
        super().__init__()
        if arch is not None:
            if arch not in CIFAR_RESNETS:
                raise ValueError(f'CifarResNet arch must be one of {list(CIFAR_RESNETS)}, '
                                 f'got {arch!r}')
            sizes = CIFAR_RESNETS[arch]
            depth, widths = sizes['depth'], sizes['widths']
            stem_width = sizes.get('stem_width')
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f'CifarResNet depth must be 6n+2 (8, 20, 32, 44, 56, ...), got '
                             f'{depth}')
        if len(widths) != 3:
            raise ValueError(f'CifarResNet has three stages; widths must be 3 numbers, got '
                             f'{widths}')
        n = (depth - 2) // 6
        stem_width = widths[0] if stem_width is None else stem_width
        self.num_classes = num_classes
        self.stem = nn.Sequential(nn.Conv2d(in_chans, stem_width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True))
        in_ch = stem_width
        for i, width in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(in_ch, width, 2 if (i > 0 and j == 0) else 1))
                in_ch = width
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
