"""Pretrain the generated dataset's teacher the way CLIP is trained: images paired with text.

Pretrained CLIP weights cannot be fetched on an offline machine, and a random teacher makes the
benchmark's numbers meaningless. So the generated dataset brings its own teacher: a tiny
open_clip model (svar/model_configs/svar-tiny-clip.json), trained with open_clip's tokenizer
and contrastive loss on (frame, caption) pairs from the captioned pool — videos disjoint from
the benchmark's train and test lists, each caption saying only what one frame shows. The
checkpoint is a plain state dict, which the teacher stage loads exactly like any pretrained
checkpoint file (`pretrained=<path>`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..atomic import torch_save, write_text
from ..clips.cache_parts import decode_frames
from ..config import default
from ..device import autocast, job_device
from ..video import uniform_indices
from .preprocess import normalize
from .weights import register_model_configs

log = logging.getLogger(__name__)


def pool_inputs(pool_dir: str | Path) -> list[Path]:
    """What pretraining reads of the captioned pool: captions.csv and the videos it names."""
    pool_dir = Path(pool_dir)
    captions = pool_dir / "captions.csv"
    if not captions.is_file():
        return []
    videos = sorted(set(pd.read_csv(captions, keep_default_na=False)["video"]))
    return [captions, *(pool_dir / v for v in videos)]


def load_pool(pool_dir: str | Path, size: int, workers: int = 1):
    """All frames of the captioned pool (uint8 [V, F, S, S, 3]) and their captions per video."""
    pool_dir = Path(pool_dir)
    captions = pd.read_csv(pool_dir / "captions.csv", keep_default_na=False)
    if list(captions.columns) != ["video", "frame", "caption"]:
        raise ValueError(f"{pool_dir / 'captions.csv'}: expected columns video, frame, caption")
    per_video = captions.groupby("video", sort=True)
    rows = pd.DataFrame({"path": [str(pool_dir / v) for v, _ in per_video],
                         "frames": [len(g) for _, g in per_video]})
    # every video decoded at the same number of evenly spaced frames, so they stack
    k = int(rows["frames"].min())
    # k evenly spread frames of each video (one centred "segments" clip), resized and centre-cropped
    frames = torch.from_numpy(np.stack(decode_frames(rows["path"], [uniform_indices(int(n), k) for n in rows["frames"]],
                                                     (size, size), workers, desc="decode pool")))
    texts = [list(g.sort_values("frame")["caption"]) for _, g in per_video]
    # the caption of each kept frame: the frames that clip holds (uniform_indices)
    kept = [[t[i] for i in uniform_indices(len(t), k)] for t in texts]
    return frames, kept


def pretrain(pool_dir, out, model_name: str = default("teacher.model"), steps: int = default("pretrain_teacher.steps"),
             batch_size: int = default("pretrain_teacher.batch_size"), lr: float = default("pretrain_teacher.lr"),
             weight_decay: float = default("pretrain_teacher.weight_decay"), seed: int = default("pretrain_teacher.seed"),
             device: str = default("teacher.device"), threads: int = 1, curve_out=None) -> list[float]:
    import open_clip

    if not (Path(pool_dir) / "captions.csv").is_file():
        raise FileNotFoundError(f"{pool_dir}: no captioned pool (captions.csv); `svar dataset` writes one beside the "
                                "generated dataset (data/synthetic-*/pretrain)")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    device = job_device(device, "teacher.device")
    register_model_configs()
    model = open_clip.create_model(model_name, pretrained=None, device=device)
    tokenizer = open_clip.get_tokenizer(model_name)
    pre = open_clip.get_model_preprocess_cfg(model)
    frames, captions = load_pool(pool_dir, pre["size"][0], threads)
    n_videos, n_frames = frames.shape[:2]
    tokens = tokenizer([c for per in captions for c in per]).view(n_videos, n_frames, -1)
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc="pretrain teacher", unit="step"):
        # one random frame from each of batch_size distinct videos: no duplicate pairs in a batch
        vids = torch.randperm(n_videos, generator=generator)[:batch_size]
        fidx = torch.randint(0, n_frames, (len(vids),), generator=generator)
        images = normalize(frames[vids, fidx].permute(0, 3, 1, 2).to(device), pre["mean"], pre["std"])
        text = tokens[vids, fidx].to(device)
        with autocast(device):
            image_features, text_features, logit_scale = model(images, text)[:3]
            loss = loss_fn(image_features.float(), text_features.float(), logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # CLIP clamps the learned temperature at 100
            model.logit_scale.clamp_(0, np.log(100))
        losses.append(loss.item())
    torch_save(out, model.state_dict())
    if curve_out:
        write_text(curve_out, "step,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(losses)))
    log.info("contrastive loss %.3f -> %.3f over %d steps", losses[0], losses[-1], steps)
    return losses
