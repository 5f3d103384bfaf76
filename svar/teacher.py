"""The teacher: a frozen open_clip image encoder, run once per dataset.

For every decodable video it encodes k uniformly sampled frames and stores the per-frame
features (float16), and it encodes class-name prompts into text embeddings. Every student run,
whatever its method, fraction or seed, reads this one store: the teacher costs nothing per run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .atomic import torch_save
from .synthetic import class_text
from .video import read_frames, uniform_indices

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
DEFAULT_TEMPLATES = ("a video of a {}.",)
RANDOM_WARNING = (
    "TEACHER WEIGHTS ARE RANDOM (pretrained: none): the teacher's features carry no learned "
    "knowledge, so distillation, pseudo-label and CLIP baseline numbers are meaningless")


def register_model_configs() -> None:
    """Make svar's own model configs (e.g. svar-tiny-clip) known to open_clip."""
    import open_clip

    open_clip.add_model_config(MODEL_CONFIG_DIR)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 on CUDA, plain fp32 on CPU: the same code runs on both."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def is_random(pretrained: str | None) -> bool:
    return pretrained in (None, "", "none")


def create_teacher(model_name: str, pretrained: str | None, device: torch.device):
    """open_clip's one entry point; returns (model, preprocess config, tokenizer)."""
    import open_clip

    register_model_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f"teacher.model: unknown open_clip model {model_name!r}; "
                         "see open_clip.list_models() or svar/model_configs/")
    if not is_random(pretrained) and (os.sep in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors"))) \
            and not os.path.exists(pretrained):
        raise FileNotFoundError(f"teacher.pretrained: checkpoint {pretrained} does not exist; "
                                "produce it first (rule pretrain_teacher) or fix the path")
    model, _, _ = open_clip.create_model_and_transforms(
        model_name, pretrained=None if is_random(pretrained) else pretrained, device=device)
    model.eval().requires_grad_(False)
    return model, open_clip.get_model_preprocess_cfg(model), open_clip.get_tokenizer(model_name)


def resize_center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, size, size]: shortest side to size, centre crop."""
    x = frames.permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[..., top:top + size, left:left + size]
    return x.round().clamp(0, 255).to(torch.uint8)


def normalize(x_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    x = x_uint8.float().div_(255)
    mean = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class FrameDataset(torch.utils.data.Dataset):
    """k uniform frames of each video, resized and cropped to the teacher's input size."""

    def __init__(self, paths, n_frames, k, size):
        self.paths, self.n_frames, self.k, self.size = list(paths), list(n_frames), k, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        frames = read_frames(self.paths[i], uniform_indices(int(self.n_frames[i]), self.k))
        return resize_center_crop(torch.from_numpy(frames), self.size)


@torch.no_grad()
def encode_text(model, tokenizer, class_names, templates, device) -> torch.Tensor:
    """Class embeddings: each template filled with the class's words, encoded, averaged."""
    embeddings = []
    for name in class_names:
        tokens = tokenizer([t.format(class_text(name)) for t in templates]).to(device)
        with autocast(device):
            e = F.normalize(model.encode_text(tokens).float(), dim=-1).mean(0)
        embeddings.append(F.normalize(e, dim=-1))
    return torch.stack(embeddings).cpu()


@torch.no_grad()
def extract(manifest, class_names, out, model_name, pretrained, frames_per_video=8, batch_size=32,
            workers=0, device="auto", templates=DEFAULT_TEMPLATES) -> dict:
    device = resolve_device(device)
    random_weights = is_random(pretrained)
    if random_weights:
        log.warning(RANDOM_WARNING)
    model, pre, tokenizer = create_teacher(model_name, pretrained, device)
    size = pre["size"][0] if isinstance(pre["size"], (tuple, list)) else pre["size"]
    data = FrameDataset(manifest["path"], manifest["frames"], frames_per_video, size)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    chunks = []
    for batch in tqdm(loader, desc="teacher", unit="batch"):
        b, k = batch.shape[:2]
        x = normalize(batch.to(device, non_blocking=True).flatten(0, 1), pre["mean"], pre["std"])
        with autocast(device):
            feats = model.encode_image(x).float()
        chunks.append(feats.view(b, k, -1).to(torch.float16).cpu())
    store = {
        "video_ids": list(manifest["video_id"]),
        "frame_features": torch.cat(chunks),
        "text_embeddings": encode_text(model, tokenizer, class_names, templates, device),
        "logit_scale": float(model.logit_scale.exp().item()),
        "class_names": list(class_names),
        "meta": {
            "model": model_name,
            "pretrained": "random" if random_weights else str(pretrained),
            "random_weights": random_weights,
            "frames_per_video": frames_per_video,
            "sampling": "uniform",
            "templates": list(templates),
            "image_size": size,
        },
    }
    torch_save(out, store)
    return store


def load_store(path) -> dict:
    # weights_only: a feature store is plain tensors, lists and numbers, nothing to execute
    return torch.load(path, map_location="cpu", weights_only=True)


def video_features(store: dict, video_ids) -> torch.Tensor:
    """The teacher's video feature: the mean of its frame features, L2-normalised."""
    index = {v: i for i, v in enumerate(store["video_ids"])}
    missing = [v for v in video_ids if v not in index]
    if missing:
        raise KeyError(f"teacher store lacks {len(missing)} videos, e.g. {missing[0]}; rerun `svar teacher`")
    rows = torch.as_tensor(np.array([index[v] for v in video_ids], dtype=np.int64))
    frames = F.normalize(store["frame_features"][rows].float(), dim=-1)
    return F.normalize(frames.mean(1), dim=-1)


def zeroshot_logits(store: dict, video_ids) -> torch.Tensor:
    return store["logit_scale"] * video_features(store, video_ids) @ store["text_embeddings"].float().T
