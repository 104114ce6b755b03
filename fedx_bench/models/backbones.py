"""Backbones: the reference CIFAR ResNet-18 (spec §1.3, with a width knob) and a small CNN for CPU runs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import BACKBONES


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class ResNetCifar(nn.Module):
    """CIFAR ResNet-18: 3×3 stem with stride 1, no max-pool, [2,2,2,2] basic blocks, global average pool.

    ``width`` is the first stage's channel count (64 in the paper); the output dimension is 8·width
    (512 in the paper). Init follows the reference: kaiming-normal (fan_out, relu) convs, BN 1/0.
    """

    def __init__(self, in_channels: int = 3, width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        in_planes = width
        for i, n in enumerate(blocks):
            planes = width * 2**i
            layer = []
            for j in range(n):
                layer.append(BasicBlock(in_planes, planes, stride=1 if (i == 0 or j > 0) else 2))
                in_planes = planes
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


class CNN4(nn.Module):
    """Four conv-BN-ReLU blocks (width, 2w, 4w, 8w), max-pool after the first three, global average pool.

    About 15× cheaper than the ResNet-18 per image: the backbone for the CPU suites.
    """

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, 1, 1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        self.net = nn.Sequential(*layers)
        self.out_dim = chans[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


BACKBONES.add("resnet18", ResNetCifar, description="CIFAR ResNet-18 (reference, spec §1.3)", default_width=64)
BACKBONES.add("cnn4", CNN4, description="4-layer CNN for CPU-scale suites", default_width=32)


def build_backbone(name: str, in_channels: int, width: int | None = None) -> nn.Module:
    """Instantiate a registered backbone; ``width`` None takes the backbone's default."""
    cls = BACKBONES.get(name)
    w = width if width is not None else BACKBONES.meta(name)["default_width"]
    return cls(in_channels=in_channels, width=w)
