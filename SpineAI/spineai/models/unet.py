"""A small 2D U-Net: the cord network.

Plain PyTorch (no MONAI at run time) so the engine depends only on torch. BatchNorm layers are
folded into the convolutions by ``fuse_for_inference`` for speed on CPU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNet2D(nn.Module):
    """Encoder-decoder with skip connections; ``len(channels)`` resolution levels.

    Input (N, in_channels, H, W) with H and W divisible by ``2 ** (len(channels) - 1)``;
    output (N, out_channels, H, W) logits.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels=(16, 32, 64, 128)):
        super().__init__()
        self.in_channels = in_channels
        self.channels = tuple(channels)
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in self.channels:
            self.encoders.append(ConvBlock(previous, width))
            previous = width
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(self.channels[:-1]):
            self.upsamplers.append(nn.ConvTranspose2d(previous, width, 2, stride=2))
            self.decoders.append(ConvBlock(2 * width, width))
            previous = width
        self.head = nn.Conv2d(previous, out_channels, 1)

    @property
    def size_divisor(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        skips.pop()
        for upsample, decoder in zip(self.upsamplers, self.decoders, strict=True):
            x = decoder(torch.cat([upsample(x), skips.pop()], dim=1))
        return self.head(x)


def fuse_for_inference(model: UNet2D) -> nn.Module:
    """Fold every Conv+BatchNorm pair into one convolution (eval mode only)."""
    model.eval()
    for block in [*model.encoders, *model.decoders]:
        fused = []
        layers = list(block)
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.BatchNorm2d):
                continue
            if isinstance(layer, nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d):
                layer = torch.nn.utils.fusion.fuse_conv_bn_eval(layer, layers[i + 1])
            fused.append(layer)
        block._modules.clear()
        for index, layer in enumerate(fused):
            block.add_module(str(index), layer)
    return model
