"""Video students: a tiny 3D CNN that trains in seconds on a CPU, and torchvision's video ResNets.

Every student returns (logits, embedding); methods that distil project the embedding to the
teacher's feature space through `Student.project`. `Student.forward_temporal` also returns the
last feature map pooled over space only ([B, T', E]), for frame-level distillation.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .registry import Registry

# the student backbones, each a function returning a module with `embed_dim` (student.arch)
STUDENTS = Registry("student", "student.arch")

# Kinetics-400 statistics, as torchvision's video models expect
VIDEO_MEAN = (0.43216, 0.394666, 0.37645)
VIDEO_STD = (0.22803, 0.22145, 0.216989)


def _block(cin, cout, stride):
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class Tiny3D(nn.Module):
    """Four 3×3×3 conv blocks; spatial stride first, temporal stride late so motion is seen."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            _block(3, width, (1, 2, 2)),
            _block(width, 2 * width, (1, 2, 2)),
            _block(2 * width, 4 * width, (2, 2, 2)),
            _block(4 * width, 4 * width, (2, 2, 2)),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        self.embed_dim = 4 * width

    def forward(self, x):
        return self.features(x)

    def forward_map(self, x):
        """(last feature map [B, E, T', H', W'], embedding [B, E])."""
        fmap = self.features[:-2](x)
        return fmap, self.features[-2:](fmap)


def _torchvision_backbone(name: str) -> nn.Module:
    from torchvision.models import video

    net = getattr(video, name)(weights=None)
    net.embed_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net


def forward_map(backbone: nn.Module, x: torch.Tensor):
    """(last feature map [B, E, T', H', W'], embedding [B, E]) of any student backbone."""
    if isinstance(backbone, Tiny3D):
        return backbone.forward_map(x)
    # torchvision's VideoResNet.forward (stem, layer1..4, avgpool, fc = Identity), keeping the map
    fmap = backbone.layer4(backbone.layer3(backbone.layer2(backbone.layer1(backbone.stem(x)))))
    return fmap, backbone.avgpool(fmap).flatten(1)


@STUDENTS.register
def tiny3d() -> nn.Module:
    return Tiny3D()


for _name in ("r3d_18", "r2plus1d_18", "mc3_18"):  # torchvision's video ResNets (VideoResNet)
    STUDENTS.register(functools.partial(_torchvision_backbone, _name), name=_name)


class Student(nn.Module):
    def __init__(self, arch: str, num_classes: int, teacher_dim: int):
        super().__init__()
        self.backbone = STUDENTS[arch]()
        self.head = nn.Linear(self.backbone.embed_dim, num_classes)
        # the distillation projection: student embedding -> teacher feature space
        self.project = nn.Linear(self.backbone.embed_dim, teacher_dim)
        self.register_buffer("mean", torch.tensor(VIDEO_MEAN).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(VIDEO_STD).view(1, 3, 1, 1, 1))

    def _input(self, clips_uint8: torch.Tensor) -> torch.Tensor:
        x = clips_uint8.permute(0, 4, 1, 2, 3).float().div(255)
        x = (x - self.mean) / self.std
        # channels-last 3D: faster convolutions with cuDNN and with oneDNN on the CPU (~10% a step)
        return x.contiguous(memory_format=torch.channels_last_3d)

    def forward(self, clips_uint8: torch.Tensor):
        """clips: uint8 [B, T, H, W, 3] -> (logits [B, C], embedding [B, E])."""
        emb = self.backbone(self._input(clips_uint8))
        return self.head(emb), emb

    def forward_temporal(self, clips_uint8: torch.Tensor):
        """(logits [B, C], embedding [B, E], temporal features [B, T', E]): the last feature map
        averaged over space only; T' is the clip's length after the backbone's temporal strides."""
        fmap, emb = forward_map(self.backbone, self._input(clips_uint8))
        return self.head(emb), emb, fmap.mean(dim=(3, 4)).transpose(1, 2)
