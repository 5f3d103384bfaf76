"""A ViT-B/16 video student with TimeSformer's divided space-time attention, built on timm.

The anchors SVFormer and SeFAR train TimeSformer's "divided_space_time" ViT-B/16: every block
first lets each patch position attend over the clip's frames (temporal attention, its output
projected by `temporal_fc`), then lets the tokens of each frame attend to one another and to the
class token (spatial attention), then applies the MLP. The spatial attention and the MLP are
timm's own `Block` (`DividedSpaceTimeBlock` extends it); the patch embedding, class token,
position embedding and final norm are timm's `VisionTransformer`'s, so a 2D timm ViT-B/16 state
dict loads into the spatial part key for key.

Initialised as TimeSformer initialises from ImageNet (`from_image_weights`): the spatial weights
copied from the 2D ViT, the temporal attention and its norm copied from the spatial ones of the
same block, `temporal_fc` and the temporal position embedding zero. With `temporal_fc` zero the
temporal branch adds nothing, so the video model starts as the 2D model applied frame by frame
(the class token, shared by the frames, gets the mean of its per-frame updates: on a clip of one
image repeated, exactly the 2D model's class token).

Differences from TimeSformer's own code, on purpose: the spatial position embedding is resampled
to the input's patch grid by timm (bicubic; TimeSformer's is nearest), so that any input whose
sides are multiples of 16 runs (the rehearsals use 32 or 64 pixels); and the student's embedding
is the mean of the final patch tokens (svar's one feature-map contract, `Student` pools the map)
where TimeSformer classifies from the final class token.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

# timm's model (architecture) and pretrained tag of the ImageNet weights the anchors start from:
# TimeSformer's and SVFormer's vit.py default_cfgs name timm's jx_vit_base_p16_224-80ecf9dd.pth,
# Google's ViT-B/16 pretrained on ImageNet-21k and fine-tuned on ImageNet-1k at 224 pixels, which
# timm 1.x publishes as vit_base_patch16_224.orig_in21k_ft_in1k
TIMM_MODEL = "vit_base_patch16_224"
IMAGENET_TAG = "orig_in21k_ft_in1k"
# the clip length the temporal position embedding is learnt for: the anchors' (SVFormer's config
# DATA.NUM_FRAMES: 8); other clip lengths take it resampled to their length, as TimeSformer does
TIME_EMBED_FRAMES = 8
# stochastic depth of the deepest block, TimeSformer's and SVFormer's ViT-B (drop_path_rate=0.1)
DROP_PATH_RATE = 0.1


def _timm_block():
    from timm.models.vision_transformer import Block

    return Block


class DividedSpaceTimeBlock(nn.Module):
    """timm's pre-norm transformer block (norm1, attn, norm2, mlp: a 2D ViT block's weights under
    its own names) with TimeSformer's temporal attention in front: temporal_norm1,
    temporal_attn (the same timm attention as the spatial one) and temporal_fc."""

    def __init__(self, dim: int, num_heads: int, **block_kwargs):
        super().__init__()
        spatial = _timm_block()(dim, num_heads, **block_kwargs)
        # the spatial block's parts as this module's own, so its keys are the 2D block's
        for name, part in spatial.named_children():
            setattr(self, name, part)
        self.temporal_norm1 = copy.deepcopy(self.norm1)
        self.temporal_attn = copy.deepcopy(self.attn)
        self.temporal_fc = nn.Linear(dim, dim)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cls [B, 1, D], patches [B, T, N, D] (N patch positions a frame) -> the same, updated."""
        b, t, n, d = patches.shape
        # temporal: each patch position attends over the T frames
        xt = patches.transpose(1, 2).reshape(b * n, t, d)
        res = self.temporal_fc(self.drop_path1(self.temporal_attn(self.temporal_norm1(xt))))
        patches = patches + res.reshape(b, n, t, d).transpose(1, 2)
        # spatial: within each frame, with its own copy of the class token
        xs = torch.cat((cls.unsqueeze(1).expand(b, t, 1, d), patches), dim=2).reshape(b * t, 1 + n, d)
        res = self.drop_path1(self.ls1(self.attn(self.norm1(xs)))).reshape(b, t, 1 + n, d)
        # the class token's update is the mean of its updates in the frames (TimeSformer's)
        cls = cls + res[:, :, 0].mean(dim=1, keepdim=True)
        patches = patches + res[:, :, 1:]
        x = torch.cat((cls, patches.reshape(b, t * n, d)), dim=1)
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x[:, :1], x[:, 1:].reshape(b, t, n, d)


class DividedSpaceTimeViT(nn.Module):
    """TimeSformer's divided space-time ViT on timm's VisionTransformer (`vit`, whose blocks are
    DividedSpaceTimeBlock), with the temporal position embedding `time_embed`.

    `forward_features(x)`: x [B, 3, T, H, W] (H, W multiples of the patch size, any T) -> the
    final patch tokens, normed, [B, D, T, H/16, W/16]."""

    def __init__(self, model: str = TIMM_MODEL, frames: int = TIME_EMBED_FRAMES,
                 drop_path_rate: float = DROP_PATH_RATE):
        super().__init__()
        import timm

        # timm's registry gives ViT-B/16's shape (patch 16, width 768, depth 12, 12 heads);
        # dynamic_img_size resamples the position embedding to each input's patch grid
        self.vit = timm.create_model(model, pretrained=False, num_classes=0, dynamic_img_size=True,
                                     block_fn=DividedSpaceTimeBlock, drop_path_rate=drop_path_rate)
        self.time_embed = nn.Parameter(torch.zeros(1, frames, self.vit.embed_dim))
        # timm's init randomised temporal_fc with the other linear layers: zero, as TimeSformer
        # does, so that the temporal branch starts adding nothing
        for block in self.vit.blocks:
            nn.init.zeros_(block.temporal_fc.weight)
            nn.init.zeros_(block.temporal_fc.bias)

    @property
    def patch_size(self) -> int:
        return self.vit.patch_embed.patch_size[0]

    def _time_embed(self, frames: int) -> torch.Tensor:
        """[1, frames, 1, D]: the temporal position embedding, resampled (nearest, TimeSformer's)
        when the clip's length is not the one it is learnt for."""
        embed = self.time_embed
        if frames != embed.shape[1]:
            embed = F.interpolate(embed.transpose(1, 2), size=frames, mode="nearest").transpose(1, 2)
        return embed.unsqueeze(2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"student.size: {h}×{w}-pixel frames; the ViT student needs sides that are "
                             f"multiples of its {self.patch_size}-pixel patches")
        frames = x.transpose(1, 2).reshape(b * t, 3, h, w)
        tokens = self.vit._pos_embed(self.vit.patch_embed(frames))  # [B*T, 1 + N, D], class token first
        tokens = self.vit.norm_pre(self.vit.patch_drop(tokens))
        d = tokens.shape[-1]
        # the class token and its position embedding are the same in every frame: keep one
        cls = tokens[::t, :1]
        patches = tokens[:, 1:].reshape(b, t, -1, d) + self._time_embed(t)
        for block in self.vit.blocks:
            cls, patches = block(cls, patches)
        patches = self.vit.norm(patches)
        gh, gw = h // self.patch_size, w // self.patch_size
        return patches.reshape(b, t, gh, gw, d).permute(0, 4, 1, 2, 3)

    forward = forward_features


def from_image_weights(state2d: dict[str, torch.Tensor], backbone: DividedSpaceTimeViT) -> dict[str, torch.Tensor]:
    """A 2D timm ViT state dict as the state dict of a DividedSpaceTimeViT, as TimeSformer loads
    ImageNet weights (its helpers.load_pretrained): every 2D weight in its place under `vit.`,
    the ImageNet classifier (head) dropped, each block's temporal_attn and temporal_norm1 copied
    from its spatial attn and norm1, temporal_fc and time_embed kept as built (zero)."""
    own = backbone.state_dict()
    out = {f"vit.{k}": v for k, v in state2d.items() if not k.startswith("head.")}
    for key in list(out):
        for spatial, temporal in ((".attn.", ".temporal_attn."), (".norm1.", ".temporal_norm1.")):
            if key.startswith("vit.blocks.") and spatial in key:
                out[key.replace(spatial, temporal)] = out[key]
    for key in own:
        if ".temporal_fc." in key or key == "time_embed":
            out[key] = torch.zeros_like(own[key])
    return out
