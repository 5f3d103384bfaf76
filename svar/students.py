"""Video students: a tiny 3D CNN that trains in seconds on a CPU, torchvision's video models, and
TimeSformer's divided space-time ViT-B/16 (svar.students_vit, on timm).

Each architecture is one `StudentArch` entry of the registry STUDENTS (student.arch): how to
build its backbone and, as data, its embedding width, the Kinetics-400 weights torchvision
publishes for it (and the input they were measured at), and the ImageNet weights inflated into
it where its convolutions are ResNet-18's made 3D, or timm's 2D ImageNet weights its spatial
layers are. svar.student_weights loads those weights.

One forward contract for every backbone (timm's): `forward_features(x)` maps a normalised clip
[B, 3, T, H, W] to its last feature map with time kept, [B, E, T', H', W']. `Student` pools the
embedding from that map, so every method sees (logits, embedding) from `Student.forward` and,
for frame-level distillation, the map averaged over space only ([B, T', E]) from
`Student.forward_temporal`. Methods that distil project the embedding to the teacher's feature
space through `Student.project`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .registry import Registry
from .students_vit import IMAGENET_TAG, TIMM_MODEL, DividedSpaceTimeViT

# the student architectures, each a StudentArch (student.arch)
STUDENTS = Registry("student", "student.arch")

# Kinetics-400 statistics: the input normalisation of tiny3d, which has no published weights
VIDEO_MEAN = (0.43216, 0.394666, 0.37645)
VIDEO_STD = (0.22803, 0.22145, 0.216989)


@functools.lru_cache(maxsize=None)
def torchvision_weights(name: str):
    """A torchvision weights enum member by its name, "R3D_18_Weights.KINETICS400_V1" (imported
    only when asked: torchvision takes seconds to import, and the config check needs only names)."""
    from torchvision.models import get_weight

    return get_weight(name)


def transform_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the named weights expect: their preset transform's own, or its class's defaults
    (torchvision's VideoClassification defaults are the Kinetics-400 statistics, its
    ImageClassification defaults ImageNet's)."""
    transforms = torchvision_weights(name).transforms
    defaults = inspect.signature(transforms.func).parameters
    stats = [tuple(transforms.keywords.get(k, defaults[k].default)) for k in ("mean", "std")]
    return stats[0], stats[1]


def channels_last_3d(module: nn.Module) -> nn.Module:
    """module with its 5-D weights in channels-last 3D memory format (see Student._input), the
    others as they are: Module.to(memory_format=channels_last_3d) refuses a module that also holds
    4-D weights, as the ViT student's 2D patch embedding."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.dim() == 5:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last_3d)
    return module


@functools.lru_cache(maxsize=None)
def timm_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) timm's pretrained weights `name` ("<model>.<tag>") expect: their pretrained_cfg's."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return tuple(cfg.mean), tuple(cfg.std)


@dataclass(frozen=True)
class StudentArch:
    """One student architecture (a member of STUDENTS)."""

    name: str
    build: Callable[[], nn.Module]  # a backbone with forward_features(x) -> [B, embed_dim, T', H', W']
    embed_dim: int
    # torchvision's Kinetics-400 weights for it (student.pretrained kinetics400), by enum name
    kinetics400: str | None = None
    # the clip length torchvision measured those weights' accuracy at (their meta's docs); with
    # their transform's crop size, the input they are native to
    kinetics400_frames: int | None = None
    # 2D ImageNet weights whose kernels inflate into it (student.pretrained imagenet): only where
    # every convolution of the arch is one of that 2D network's, with a time extent added
    imagenet: str | None = None
    # or timm's 2D ImageNet weights whose layers are its spatial ones (student.pretrained
    # imagenet), by timm's pretrained name "<model>.<tag>"; its input is normalised as they expect
    timm_imagenet: str | None = None

    def make(self) -> nn.Module:
        backbone = self.build()
        backbone.embed_dim = self.embed_dim
        return backbone

    @property
    def native_input(self) -> tuple[int, int] | None:
        """(frames, size) of the clips its Kinetics-400 weights were measured on; None without them."""
        if self.kinetics400 is None:
            return None
        crop = torchvision_weights(self.kinetics400).transforms.keywords["crop_size"]
        return self.kinetics400_frames, crop[0]

    def normalisation(self, pretrained: str = "none") -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) of its input: ImageNet's for imagenet-inflated weights, else what its
        Kinetics-400 weights or its timm ImageNet weights expect (scratch and files too, so that
        one arch normalises alike whatever it starts from), Kinetics-400 statistics where it has
        none."""
        if self.timm_imagenet is not None:
            return timm_stats(self.timm_imagenet)
        if pretrained == "imagenet" and self.imagenet is not None:
            return transform_stats(self.imagenet)
        if self.kinetics400 is not None:
            return transform_stats(self.kinetics400)
        return VIDEO_MEAN, VIDEO_STD


# --------------------------------------------------------------------------- backbones


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
        )

    def forward_features(self, x):
        return self.features(x)

    forward = forward_features


class TorchvisionFeatures(nn.Module):
    """A torchvision video model without its classifier, exposing forward_features.

    It keeps the model's submodules under torchvision's own names, so that torchvision's state
    dicts load into it once the classifier's keys (`HEAD`, the attribute torchvision's model
    keeps it in) are dropped: the student's own head replaces that classifier.
    """

    PARTS: tuple[str, ...] = ()
    HEAD = ""

    def __init__(self, net: nn.Module):
        super().__init__()
        for part in self.PARTS:
            setattr(self, part, getattr(net, part))

    def forward(self, x):
        return self.forward_features(x)


class VideoResNetFeatures(TorchvisionFeatures):
    """r3d_18, mc3_18, r2plus1d_18: VideoResNet.forward up to layer4."""

    PARTS = ("stem", "layer1", "layer2", "layer3", "layer4")
    HEAD = "fc"

    def forward_features(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


class S3DFeatures(TorchvisionFeatures):
    """s3d: its `features`, so that small clips work. torchvision's avgpool (a fixed 2×7×7 kernel,
    for 224-pixel clips) is left out: the student pools the map whatever its size. And a max pool
    whose window is longer than what reaches it (its last, 2×2×2 and unpadded, gets a single
    frame from clips of 4 frames or fewer, a single row from frames under 17 pixels) takes the
    max of what there is, as ceil_mode's partial window would, where torchvision's has no output
    at all; wherever torchvision's runs, this is exactly it."""

    PARTS = ("features",)
    HEAD = "classifier"

    def forward_features(self, x):
        for layer in self.features:
            if isinstance(layer, nn.MaxPool3d):
                x = _pad_to_window(x, layer)
            x = layer(x)
        return x


def _pad_to_window(x: torch.Tensor, pool: nn.MaxPool3d) -> torch.Tensor:
    """x [B, C, T, H, W], each of T, H, W too short for one window of the pool extended by
    repeating its last entry (a max over them is the max over what there is); else x itself."""
    from torch.nn.modules.utils import _triple

    short = [max(0, k - 2 * p - n) for k, p, n in zip(_triple(pool.kernel_size), _triple(pool.padding), x.shape[2:])]
    if not any(short):
        return x
    return nn.functional.pad(x, (0, short[2], 0, short[1], 0, short[0]), mode="replicate")


class MViTFeatures(TorchvisionFeatures):
    """mvit_v2_s: its patch embedding, blocks and norm, the class token dropped from the output.

    torchvision's MViT.forward walks its blocks with the token grid of the input it was built
    for (224 pixels, 16 frames: torchvision's mvit_v2_s takes no other); this takes the grid
    from the patch embedding's output instead, so the model runs at any clip size. Its
    parameters do not depend on the grid: relative positions (no absolute position table), which
    torchvision's attention interpolates to the grid it is given.
    """

    PARTS = ("conv_proj", "pos_encoding", "blocks", "norm")
    HEAD = "head"

    def forward_features(self, x):
        x = self.conv_proj(x)
        batch, thw = x.shape[0], tuple(x.shape[2:])
        x = self.pos_encoding(x.flatten(2).transpose(1, 2))  # prepends the class token
        for block in self.blocks:
            x, thw = block(x, thw)
        x = self.norm(x)
        return x[:, 1:].transpose(1, 2).reshape(batch, x.shape[-1], *thw)


class Swin3DFeatures(TorchvisionFeatures):
    """swin3d_t: SwinTransformer3d.forward up to its norm, channels moved first."""

    PARTS = ("patch_embed", "pos_drop", "features", "norm")
    HEAD = "head"

    def forward_features(self, x):
        x = self.norm(self.features(self.pos_drop(self.patch_embed(x))))  # [B, T', H', W', E]
        return x.permute(0, 4, 1, 2, 3)


def _torchvision(name: str, features: type[TorchvisionFeatures]) -> nn.Module:
    from torchvision.models import video

    return features(getattr(video, name)(weights=None))


STUDENTS.register(StudentArch("tiny3d", Tiny3D, embed_dim=64))
for _arch in (
    StudentArch("r3d_18", functools.partial(_torchvision, "r3d_18", VideoResNetFeatures), 512,
                "R3D_18_Weights.KINETICS400_V1", 16, imagenet="ResNet18_Weights.IMAGENET1K_V1"),
    StudentArch("r2plus1d_18", functools.partial(_torchvision, "r2plus1d_18", VideoResNetFeatures), 512,
                "R2Plus1D_18_Weights.KINETICS400_V1", 16),
    StudentArch("mc3_18", functools.partial(_torchvision, "mc3_18", VideoResNetFeatures), 512,
                "MC3_18_Weights.KINETICS400_V1", 16, imagenet="ResNet18_Weights.IMAGENET1K_V1"),
    StudentArch("s3d", functools.partial(_torchvision, "s3d", S3DFeatures), 1024,
                "S3D_Weights.KINETICS400_V1", 128),
    StudentArch("mvit_v2_s", functools.partial(_torchvision, "mvit_v2_s", MViTFeatures), 768,
                "MViT_V2_S_Weights.KINETICS400_V1", 16),
    StudentArch("swin3d_t", functools.partial(_torchvision, "swin3d_t", Swin3DFeatures), 768,
                "Swin3D_T_Weights.KINETICS400_V1", 32),
):
    STUDENTS.register(_arch)
# TimeSformer's divided space-time ViT-B/16, the anchors' (SVFormer's, SeFAR's) student
STUDENTS.register(StudentArch("vit_b16_divided", DividedSpaceTimeViT, 768,
                              timm_imagenet=f"{TIMM_MODEL}.{IMAGENET_TAG}"))


# --------------------------------------------------------------------------- the student


class Student(nn.Module):
    """A backbone (student.arch), a classifier head and the distillation projection.

    `Student(arch, num_classes, teacher_dim)` is randomly initialised; a checkpoint's state dict
    then restores every weight and the input normalisation (a buffer). Initial weights from
    student.pretrained come through svar.student_weights.build_student, which says in `init`
    how the backbone started.
    """

    def __init__(self, arch: str, num_classes: int, teacher_dim: int):
        super().__init__()
        spec = STUDENTS[arch]
        self.arch = arch
        self.backbone = spec.make()
        self.head = nn.Linear(spec.embed_dim, num_classes)
        # the distillation projection: student embedding -> teacher feature space
        self.project = nn.Linear(spec.embed_dim, teacher_dim)
        mean, std = spec.normalisation()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1, 1))
        self.init = "scratch"  # how the backbone's weights started (svar.student_weights)

    def set_normalisation(self, mean, std) -> None:
        self.mean.copy_(torch.tensor(mean).view(1, 3, 1, 1, 1))
        self.std.copy_(torch.tensor(std).view(1, 3, 1, 1, 1))

    def _input(self, clips_uint8: torch.Tensor) -> torch.Tensor:
        x = clips_uint8.permute(0, 4, 1, 2, 3).float().div(255)
        x = (x - self.mean) / self.std
        # channels-last 3D: faster convolutions with cuDNN and with oneDNN on the CPU (~10% a step)
        return x.contiguous(memory_format=torch.channels_last_3d)

    def feature_map(self, clips_uint8: torch.Tensor) -> torch.Tensor:
        """clips: uint8 [B, T, H, W, 3] -> the backbone's last feature map [B, E, T', H', W']."""
        return self.backbone.forward_features(self._input(clips_uint8))

    def forward(self, clips_uint8: torch.Tensor):
        """clips: uint8 [B, T, H, W, 3] -> (logits [B, C], embedding [B, E])."""
        emb = self.feature_map(clips_uint8).mean(dim=(2, 3, 4))
        return self.head(emb), emb

    def forward_temporal(self, clips_uint8: torch.Tensor):
        """(logits [B, C], embedding [B, E], temporal features [B, T', E]): the last feature map
        averaged over space only; T' is the clip's length after the backbone's temporal strides."""
        temporal = self.feature_map(clips_uint8).mean(dim=(3, 4)).transpose(1, 2)
        emb = temporal.mean(dim=1)
        return self.head(emb), emb, temporal


def model_from_checkpoint(ckpt: dict) -> nn.Module:
    """The trained model of a `svar train` checkpoint of kind student, its weights loaded: a
    Student, or the teacher's CLIP as a video classifier (clip_finetune: its `model` entry)."""
    described = ckpt.get("model")
    if described is not None:
        from .teacher.video_classifier import KIND, classifier_from_checkpoint

        if described["kind"] != KIND:
            raise ValueError(f"unknown model kind {described['kind']!r} in a checkpoint")
        return classifier_from_checkpoint(described, ckpt["state_dict"])
    student = Student(ckpt["arch"], ckpt["num_classes"], ckpt["teacher_dim"])
    student.load_state_dict(ckpt["state_dict"])
    return student
