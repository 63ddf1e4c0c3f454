"""ResNets for 32x32 inputs, used as CNN teachers on CIFAR.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2: a 3x3
stem without max-pooling and three stages of basic blocks (depth = 6n + 2). ``widths``
makes the stages wider than the paper's 16/32/64 for a stronger teacher at equal depth.
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


@MODELS.register_module()
class CifarResNet(nn.Module):
    """CIFAR ResNet-(6n+2). Stages are ``stem``, ``layer1``..``layer3`` (32, 16, 8 px)."""

    def __init__(self, depth=20, widths=(16, 32, 64), num_classes=10, in_chans=3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f'CifarResNet depth must be 6n+2 (20, 32, 44, 56, ...), got {depth}')
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        in_ch = widths[0]
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
