"""The CNN behind image models, in plain torch (no torchvision here)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Conv-BN-ReLU blocks, each halving the resolution, then global average pooling and a linear head.
    Global pooling keeps it input-size agnostic; the preprocessing still resizes to what training saw."""

    def __init__(self, *, in_channels: int = 1, channels: Sequence[int] = (32, 64, 128), num_classes: int = 2,
                 dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(previous, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3), keepdim=True)
        logits: torch.Tensor = self.head(pooled)
        return logits
