"""The teacher: a frozen open_clip image encoder, run once per dataset.

For every decodable video it encodes sampled frames (k uniform frames by default; or k frames
at a fixed rate; or n clips of k frames) and stores the per-frame features (float16), and it
encodes class-name prompts into text embeddings. Every student run, whatever its method,
fraction or seed, reads this one store: the teacher costs nothing per run.

The pipeline, built to keep the encoder busy:

  decode      DataLoader worker processes (spawn context: forking a process whose torch threads
              run can deadlock), each decoding whole videos, prefetching ahead of the encoder
  resize      shortest side to the model's input size (bicubic, antialias), centre crop. On CUDA
              it runs on the device, batched over the videos of a batch that share a frame size
              (the GPU does it in microseconds, and the workers' cores stay free for decoding);
              on CPU the "device" is the very cores the encoder needs, so it runs in the workers,
              in parallel, per video, where the different frame sizes of a dataset cost nothing
  normalise   on the device, with the model's own mean/std
  encode      bf16 autocast on CUDA (fp32 on CPU), pinned host memory, non-blocking copies

`extract` writes one store; `extract_shard` + `gather` split the same work over jobs, each
resumable: a shard writes its finished chunks as part files (atomically) and a restarted shard
skips them.

Weights are loaded with `weights_only=True` (open_clip's default, which svar never turns off):
a checkpoint that holds pickled objects other than tensors is refused without running them.
"""

from __future__ import annotations

import contextlib
import logging
import math
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
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz")
SAMPLING_MODES = ("uniform", "fps", "clips")
# the keys each sampling mode takes (see sampling_spec)
SAMPLING_KEYS = {"uniform": ("mode", "frames"), "fps": ("mode", "frames", "fps"), "clips": ("mode", "frames", "clips")}


def register_model_configs() -> None:
    """Make svar's own model configs (e.g. svar-tiny-clip) known to open_clip."""
    import open_clip

    open_clip.add_model_config(MODEL_CONFIG_DIR)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU. For timings."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device):
    """bf16 on CUDA, plain fp32 on CPU: the same code runs on both."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def is_random(pretrained: str | None) -> bool:
    return pretrained in (None, "", "none")


# --------------------------------------------------------------------------- weights


def _schema(model_name: str) -> str | None:
    for schema in ("local-dir", "hf-hub"):
        if model_name.startswith(schema + ":"):
            return schema
    return None


def _is_file_spec(pretrained: str) -> bool:
    return os.sep in pretrained or "/" in pretrained or pretrained.endswith(CHECKPOINT_SUFFIXES)


def weights_source(model_name: str, pretrained: str | None) -> str:
    """Where a teacher's weights come from: "local-dir" or "hf-hub" (the model name's schema, which
    ignores `pretrained`), "random", "file" (a checkpoint path) or "tag" (an open_clip pretrained
    tag). "hf-hub" and "tag" are downloaded (fetch_weights, rule teacher_weights); the others not."""
    schema = _schema(model_name)
    if schema is not None:
        return schema
    if is_random(pretrained):
        return "random"
    return "file" if _is_file_spec(pretrained) else "tag"


def _offline_env(offline: bool | None) -> bool:
    if offline is not None:
        return bool(offline)
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _missing_weights(what: str, cache_dir) -> FileNotFoundError:
    where = cache_dir or "open_clip's default cache (~/.cache/clip, ~/.cache/huggingface)"
    return FileNotFoundError(
        f"teacher.pretrained: {what} is not in the cache {where}, and svar is offline, so it will not "
        "download it. Run the `teacher_weights` rule where there is internet (it fills teacher.cache_dir; "
        "the same teacher.cache_dir must be set here), or point teacher.pretrained at a checkpoint file")


def _cached_pretrained(cfg: dict, cache_dir=None, what: str = "weights") -> str:
    """The local file of an open_clip pretrained tag, from the cache only: never the network."""
    if "file" in cfg:
        return cfg["file"]
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import hf_hub_download

        repo, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            try:
                return hf_hub_download(repo_id=repo, filename=name, cache_dir=cache_dir, local_files_only=True)
            except Exception:  # not cached under this name: try the next
                pass
    url = cfg.get("url", "")
    if url:
        path = os.path.join(cache_dir or os.path.expanduser("~/.cache/clip"), os.path.basename(url))
        if os.path.isfile(path):
            return path
    raise _missing_weights(what, cache_dir)


@contextlib.contextmanager
def _no_network(cache_dir=None):
    """Inside: open_clip resolves tags from the cache only and the HF hub client is offline."""
    import open_clip.factory

    saved_download = open_clip.factory.download_pretrained
    hub_constants, saved_flag = None, None
    try:
        import huggingface_hub.constants as hub_constants

        saved_flag = hub_constants.HF_HUB_OFFLINE
        hub_constants.HF_HUB_OFFLINE = True
    except ImportError:
        pass
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    open_clip.factory.download_pretrained = (
        lambda cfg, prefer_hf_hub=True, cache_dir=cache_dir: _cached_pretrained(cfg, cache_dir))
    try:
        yield
    finally:
        open_clip.factory.download_pretrained = saved_download
        if hub_constants is not None:
            hub_constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def _unsafe_pickle(exc: BaseException) -> bool:
    import pickle

    while exc is not None:
        if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _weights_file(model_name: str, pretrained) -> str:
    if _schema(model_name) == "local-dir":
        from open_clip.factory import _find_checkpoint_in_dir

        folder = Path(model_name.split(":", 1)[1]).expanduser()
        return _find_checkpoint_in_dir(folder) or str(folder)
    return str(pretrained)


def create_teacher(model_name: str, pretrained: str | None, device: torch.device, cache_dir: str | None = None,
                   offline: bool | None = None):
    """open_clip's one entry point; returns (model, preprocess config, tokenizer).

    model_name: an open_clip model name (ViT-B-32, svar-tiny-clip ...), `local-dir:PATH` (a folder
    with open_clip_config.json and the weights) or `hf-hub:org/repo`; both schemas ignore
    `pretrained`. pretrained: an open_clip tag (openai ...), a checkpoint file, or none (random).
    cache_dir: where tag and hf-hub weights are cached (rule teacher_weights fills it).
    offline: never touch the network (None: as the HF_HUB_OFFLINE environment variable says);
    weights missing from the cache are an error naming the rule that provides them.
    """
    import open_clip

    register_model_configs()
    device = torch.device(device)
    source = weights_source(model_name, pretrained)
    offline = _offline_env(offline)
    if source not in ("local-dir", "hf-hub") and model_name not in open_clip.list_models():
        raise ValueError(f"teacher.model: unknown open_clip model {model_name!r}; "
                         "see open_clip.list_models() or svar/model_configs/ (or use local-dir:PATH, hf-hub:ORG/REPO)")
    if source == "local-dir":
        folder = Path(model_name.split(":", 1)[1]).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise FileNotFoundError(f"teacher.model: {model_name} needs a folder holding open_clip_config.json "
                                    f"and the weights; {folder / 'open_clip_config.json'} does not exist")
    if source == "file" and not os.path.exists(pretrained):
        raise FileNotFoundError(f"teacher.pretrained: checkpoint {pretrained} does not exist; "
                                "produce it first (rule pretrain_teacher) or fix the path")
    if source == "tag":
        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        if not tag_cfg:
            raise ValueError(f"teacher.pretrained: {pretrained!r} is neither a checkpoint file nor a pretrained "
                             f"tag of {model_name}; its tags: {open_clip.list_pretrained_tags_by_model(model_name)}")
        if offline:  # fail early and clearly, before building the model
            _cached_pretrained(tag_cfg, cache_dir, f"the weights of {model_name} / {pretrained}")
    guard = _no_network(cache_dir) if offline else contextlib.nullcontext()
    random_weights = source == "random"
    try:
        with guard, torch.random.fork_rng(devices=[], enabled=random_weights):
            if random_weights:  # the same random teacher in every job and shard, and the caller's RNG untouched
                torch.manual_seed(0)
            model = open_clip.create_model(model_name, pretrained=pretrained if source in ("file", "tag") else None,
                                           device=device, cache_dir=cache_dir, weights_only=True)
    except Exception as exc:
        if _unsafe_pickle(exc):
            raise ValueError(
                f"teacher.pretrained: {_weights_file(model_name, pretrained)} holds objects that are not tensors; "
                "svar loads weights only (torch.load weights_only=True) and never runs code from a checkpoint. "
                "Save a plain state dict (torch.save(model.state_dict(), ...)) or safetensors instead") from None
        if offline and source == "hf-hub":
            raise _missing_weights(f"{model_name} (config and weights)", cache_dir) from exc
        raise
    model.eval().requires_grad_(False)
    return model, open_clip.get_model_preprocess_cfg(model), open_clip.get_tokenizer(model_name, cache_dir=cache_dir)


def fetch_weights(model_name: str, pretrained: str | None, cache_dir: str | None) -> str | None:
    """Download a teacher's weights into cache_dir (rule teacher_weights, run with internet).

    Returns the local file (or folder) that `create_teacher(..., cache_dir=cache_dir, offline=True)`
    then reads; None for random weights. Checkpoint files and local-dir folders need no download.
    """
    import open_clip
    from open_clip import pretrained as oc_pretrained

    register_model_configs()
    source = weights_source(model_name, pretrained)
    if source == "local-dir":
        return model_name.split(":", 1)[1]
    if source == "hf-hub":
        repo = model_name.split(":", 1)[1]
        oc_pretrained.download_pretrained_from_hf(repo, filename="open_clip_config.json", cache_dir=cache_dir)
        return oc_pretrained.download_pretrained_from_hf(repo, cache_dir=cache_dir)
    if source == "random":
        return None
    if source == "file":
        return pretrained
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not cfg:
        raise ValueError(f"teacher.pretrained: {pretrained!r} is not a pretrained tag of {model_name}; "
                         f"its tags: {open_clip.list_pretrained_tags_by_model(model_name)}")
    return oc_pretrained.download_pretrained(cfg, cache_dir=cache_dir)


def weights_receipt(model_name: str, pretrained: str | None, cache_dir: str | None, out) -> dict:
    """Fetch a teacher's weights (fetch_weights) and write a receipt: what was fetched, where it
    lies, its size and sha256. Rule teacher_weights's output; rule teacher_shard depends on it,
    so the download happens once, on a machine with internet, before any shard job starts."""
    from .atomic import write_json
    from .download import file_digests

    path = fetch_weights(model_name, pretrained, cache_dir)
    receipt = {"model": model_name, "pretrained": str(pretrained), "cache_dir": str(cache_dir or ""),
               "path": str(path) if path else None}
    if path and os.path.isfile(path):
        receipt.update(bytes=os.path.getsize(path), sha256=file_digests(path, ["sha256"])["sha256"])
    write_json(out, receipt)
    log.info("teacher weights of %s / %s: %s", model_name, pretrained, receipt["path"])
    return receipt


# --------------------------------------------------------------------------- frames


def sampling_spec(sampling: dict | None = None, frames_per_video: int = 8) -> dict:
    """The frame sampling, complete, as recorded in a store's meta.

    {"mode": "uniform", "frames": k}             k frames, centres of k equal segments (default)
    {"mode": "fps", "fps": r, "frames": k}       k frames r per second apart, centred in the video
                                                  (clamped to its ends when it is shorter)
    {"mode": "clips", "clips": n, "frames": k}   n equal segments, k uniform frames in each; stored
                                                  as n*k frames per video, clip after clip
    """
    spec = {"mode": "uniform", "frames": int(frames_per_video)}
    spec.update(sampling or {})
    mode = spec["mode"]
    if mode not in SAMPLING_MODES:
        raise ValueError(f"teacher.sampling.mode: {mode!r} is not one of {SAMPLING_MODES}")
    if int(spec["frames"]) < 1:
        raise ValueError("teacher.sampling.frames must be at least 1")
    spec["frames"] = int(spec["frames"])
    if mode == "fps":
        if float(spec.get("fps", 0)) <= 0:
            raise ValueError("teacher.sampling: mode fps needs fps > 0")
        spec["fps"] = float(spec["fps"])
    if mode == "clips":
        spec["clips"] = int(spec.get("clips", 1))
        if spec["clips"] < 1:
            raise ValueError("teacher.sampling: mode clips needs clips >= 1")
    extra = set(spec) - set(SAMPLING_KEYS[mode])
    if extra:
        raise ValueError(f"teacher.sampling: keys {sorted(extra)} do not apply to mode {mode}")
    return spec


def sampling_from_config(cfg: dict) -> dict:
    """A config's `teacher.sampling` (every key present, as the schema requires) as a spec: only
    the keys its mode uses, so that fps and clips can stay in the config for the other modes."""
    mode = cfg.get("mode", "uniform")
    if mode not in SAMPLING_KEYS:
        raise ValueError(f"teacher.sampling.mode: {mode!r} is not one of {SAMPLING_MODES}")
    return sampling_spec({k: cfg[k] for k in SAMPLING_KEYS[mode] if k in cfg}, cfg.get("frames", 8))


def frames_per_store_row(spec: dict) -> int:
    return spec["frames"] * spec.get("clips", 1)


def sample_indices(n_frames: int, video_fps: float, spec: dict) -> np.ndarray:
    """Frame indices of one video under a sampling spec (see sampling_spec)."""
    k = spec["frames"]
    if spec["mode"] == "uniform":
        return uniform_indices(int(n_frames), k)
    if spec["mode"] == "clips":
        n = spec["clips"]
        seg = n_frames / n
        return np.concatenate([
            np.clip(np.floor(c * seg + uniform_indices(max(1, int(math.floor(seg))), k)).astype(np.int64),
                    0, n_frames - 1) for c in range(n)])
    if n_frames <= 0:
        raise ValueError("a video with no frames has no indices")
    step = (float(video_fps) / spec["fps"]) if video_fps and video_fps > 0 else 1.0
    centre = (n_frames - 1) / 2
    idx = np.round(centre + (np.arange(k) - (k - 1) / 2) * step).astype(np.int64)
    return np.clip(idx, 0, n_frames - 1)


def resize_center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, size, size]: shortest side to size, centre crop.

    Runs on whatever device `frames` is on; frames already size × size are only permuted.
    """
    x = frames.permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x.contiguous()
    x = x.float()
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
    """Sampled frames of each video: item i is (i, uint8 frames).

    With `size`, frames come resized and cropped ([T, 3, size, size], in the worker); with
    size None, as decoded ([T, H, W, 3]) for the device to resize.
    """

    def __init__(self, paths, n_frames, k=8, size=None, fps=None, sampling=None):
        self.paths, self.n_frames, self.size = list(paths), list(n_frames), size
        self.fps = list(fps) if fps is not None else [0.0] * len(self.paths)
        self.spec = sampling_spec(sampling, k)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        idx = sample_indices(int(self.n_frames[i]), float(self.fps[i]), self.spec)
        frames = torch.from_numpy(read_frames(self.paths[i], idx))
        if self.size is not None:
            frames = resize_center_crop(frames, self.size)
        return i, frames


def collate_frames(items):
    """(positions int64 [B], frames): one stacked tensor when all shapes agree, else a list."""
    positions = torch.tensor([i for i, _ in items], dtype=torch.int64)
    frames = [f for _, f in items]
    if all(f.shape == frames[0].shape for f in frames):
        return positions, torch.stack(frames)
    return positions, frames


def to_model_input(frames, size: int, pre: dict, device: torch.device, resized: bool) -> torch.Tensor:
    """A batch of uint8 frames -> normalised float [B*T, 3, size, size] on the device.

    Not yet resized: videos sharing a frame size are resized together, on the device.
    """
    if resized:
        x = frames.to(device, non_blocking=True).flatten(0, 1)
        return normalize(x, pre["mean"], pre["std"])
    videos = list(frames) if isinstance(frames, (list, tuple)) else [frames[j] for j in range(frames.shape[0])]
    t = videos[0].shape[0]
    out = [None] * len(videos)
    groups: dict[tuple, list[int]] = {}
    for j, v in enumerate(videos):
        groups.setdefault(tuple(v.shape), []).append(j)
    for members in groups.values():
        if len(members) == len(videos) and not isinstance(frames, (list, tuple)):
            batch = frames
        else:
            batch = torch.stack([videos[j] for j in members])
        x = resize_center_crop(batch.to(device, non_blocking=True).flatten(0, 1), size)
        for n, j in enumerate(members):
            out[j] = x[n * t:(n + 1) * t]
    return normalize(torch.cat(out), pre["mean"], pre["std"])


@torch.no_grad()
def encode_frames(model, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Normalised frames [M, 3, S, S] on the device -> float32 features [M, D]."""
    with autocast(device):
        return model.encode_image(x).float()


@torch.no_grad()
def encode_text(model, tokenizer, class_names, templates, device) -> torch.Tensor:
    """Class embeddings: each template filled with the class's words, encoded, averaged."""
    embeddings = []
    for name in class_names:
        tokens = tokenizer([t.format(class_text(name)) for t in templates]).to(device)
        with autocast(device):
            e = F.normalize(model.encode_text(tokens).float(), dim=-1).mean(0)
        embeddings.append(F.normalize(e, dim=-1))
    if not embeddings:
        return torch.zeros(0, int(model.text_projection.shape[-1]) if hasattr(model, "text_projection") else 0)
    return torch.stack(embeddings).cpu()


# --------------------------------------------------------------------------- the pipeline


def _image_size(pre: dict) -> int:
    return pre["size"][0] if isinstance(pre["size"], (tuple, list)) else pre["size"]


def make_loader(manifest, spec: dict, size: int, device: torch.device, workers: int = 0, batch_size: int = 32,
                batches=None, prefetch: int = 4, resize_on: str = "auto"):
    """The decoding DataLoader: worker processes (spawn), pinned memory on CUDA, prefetching.

    batches: explicit lists of manifest positions (one list per batch); default, consecutive.
    resize_on: "worker", "device", or "auto" (device on CUDA, workers on CPU; see the module doc).
    Returns (loader, resized): resized says whether the batches come already resized.
    """
    if resize_on == "auto":
        resize_on = "device" if device.type == "cuda" else "worker"
    if resize_on not in ("worker", "device"):
        raise ValueError(f"resize_on: {resize_on!r} is not worker, device or auto")
    fps = manifest["fps"] if "fps" in manifest else None
    data = FrameDataset(manifest["path"], manifest["frames"], spec["frames"], size if resize_on == "worker" else None,
                        fps, spec)
    if batches is None:
        batches = [list(range(s, min(s + batch_size, len(data)))) for s in range(0, len(data), batch_size)]
    kwargs = {}
    if workers > 0:
        kwargs = {"multiprocessing_context": "spawn", "persistent_workers": True, "prefetch_factor": prefetch}
    loader = torch.utils.data.DataLoader(data, batch_sampler=batches, num_workers=workers, collate_fn=collate_frames,
                                         pin_memory=device.type == "cuda", **kwargs)
    return loader, resize_on == "worker"


def _encode_batches(model, pre, device, loader, resized: bool, k_row: int, progress: str | None = None):
    """Yield (positions, float16 features [B, k_row, D] on the CPU) for each batch of the loader."""
    size = _image_size(pre)
    for positions, frames in tqdm(loader, desc=progress, unit="batch", disable=progress is None):
        x = to_model_input(frames, size, pre, device, resized)
        feats = encode_frames(model, x, device)
        yield positions, feats.view(len(positions), k_row, -1).to(torch.float16).cpu()


def _store_meta(model_name, pretrained, spec, templates, size) -> dict:
    random_weights = weights_source(model_name, pretrained) == "random"
    return {
        "model": model_name,
        "pretrained": "random" if random_weights else str(pretrained if _schema(model_name) is None else model_name),
        "random_weights": random_weights,
        "frames_per_video": frames_per_store_row(spec),
        "sampling": dict(spec),
        "templates": list(templates),
        "image_size": size,
    }


def _setup(model_name, pretrained, device, cache_dir, offline, threads):
    device = resolve_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    if weights_source(model_name, pretrained) == "random":
        log.warning(RANDOM_WARNING)
    model, pre, tokenizer = create_teacher(model_name, pretrained, device, cache_dir=cache_dir, offline=offline)
    return device, model, pre, tokenizer


@torch.no_grad()
def extract(manifest, class_names, out, model_name, pretrained, frames_per_video=8, batch_size=32,
            workers=0, device="auto", templates=DEFAULT_TEMPLATES, *, sampling: dict | None = None,
            cache_dir: str | None = None, offline: bool | None = None, prefetch: int = 4,
            resize_on: str = "auto", threads: int | None = None) -> dict:
    """Encode every video of the manifest; write and return the store (see load_store)."""
    spec = sampling_spec(sampling, frames_per_video)
    device, model, pre, tokenizer = _setup(model_name, pretrained, device, cache_dir, offline, threads)
    size = _image_size(pre)
    loader, resized = make_loader(manifest, spec, size, device, workers, batch_size, prefetch=prefetch,
                                  resize_on=resize_on)
    chunks = [f for _, f in _encode_batches(model, pre, device, loader, resized, frames_per_store_row(spec), "teacher")]
    dim = model.visual.output_dim if hasattr(model.visual, "output_dim") else None
    store = {
        "video_ids": list(manifest["video_id"]),
        "frame_features": torch.cat(chunks) if chunks else torch.zeros(0, frames_per_store_row(spec), dim or 0,
                                                                         dtype=torch.float16),
        "text_embeddings": encode_text(model, tokenizer, class_names, templates, device),
        "logit_scale": float(model.logit_scale.exp().item()),
        "class_names": list(class_names),
        "meta": _store_meta(model_name, pretrained, spec, templates, size),
    }
    torch_save(out, store)
    return store


# --------------------------------------------------------------------------- shards


def shard_path(out_dir, shard_index: int, n_shards: int) -> Path:
    return Path(out_dir) / f"shard_{shard_index:03d}_of_{n_shards:03d}.pt"


def shard_rows(n_videos: int, shard_index: int, n_shards: int, assignment: str = "strided") -> list[int]:
    """Manifest positions of one shard: every n-th video (strided) or one contiguous range."""
    if not 0 <= shard_index < n_shards:
        raise ValueError(f"shard index {shard_index} is not in 0..{n_shards - 1}")
    if assignment == "strided":
        return list(range(shard_index, n_videos, n_shards))
    if assignment == "contiguous":
        per = math.ceil(n_videos / n_shards)
        return list(range(shard_index * per, min(n_videos, (shard_index + 1) * per)))
    raise ValueError(f"teacher.shards.assignment: {assignment!r} is not strided or contiguous")


@torch.no_grad()
def extract_shard(manifest, shard_index: int, n_shards: int, out_dir, model_name: str = "svar-tiny-clip",
                  pretrained: str | None = "none", class_names=(), *, frames_per_video: int = 8,
                  sampling: dict | None = None, batch_size: int = 32, chunk_size: int | None = None,
                  workers: int = 0, device="auto", templates=DEFAULT_TEMPLATES, assignment: str = "strided",
                  cache_dir: str | None = None, offline: bool | None = None, prefetch: int = 4,
                  resize_on: str = "auto", threads: int | None = None, on_chunk=None,
                  stop_after_chunks: int | None = None) -> Path | None:
    """Encode one shard of the manifest into out_dir/shard_{i:03d}_of_{n:03d}.pt, resumably.

    The shard's videos are cut into chunks of chunk_size (default 4 batches); each finished chunk
    is written atomically as out_dir/shard_i_of_n.parts/part_{j:05d}.pt. A restart skips the
    chunks whose part file exists (and matches this configuration), so no finished video is
    encoded twice; the chunks, and the batches inside them, are the same on every run, so a
    resumed shard equals a clean one bit for bit. on_chunk(chunk_index, video_ids) is called
    after each part is written; stop_after_chunks returns (None) after that many new chunks.
    Returns the shard file once every chunk is done.
    """
    spec = sampling_spec(sampling, frames_per_video)
    chunk_size = chunk_size or 4 * batch_size
    target = shard_path(out_dir, shard_index, n_shards)
    parts_dir = target.with_suffix(".parts")
    ids = list(manifest["video_id"])
    rows = shard_rows(len(ids), shard_index, n_shards, assignment)
    chunks = [rows[s:s + chunk_size] for s in range(0, len(rows), chunk_size)]
    key = {"model": model_name, "pretrained": str(pretrained), "sampling": spec, "n_videos": len(ids),
           "shard": [shard_index, n_shards, assignment], "chunk_size": chunk_size}

    def part_file(j):
        return parts_dir / f"part_{j:05d}.pt"

    def finished(j):
        f = part_file(j)
        if not f.exists():
            return False
        part = torch.load(f, map_location="cpu", weights_only=True)
        if part.get("key") != key or part["video_ids"] != [ids[r] for r in chunks[j]]:
            log.warning("%s: made with another configuration or manifest; encoding it again", f)
            return False
        return True

    pending = [j for j in range(len(chunks)) if not finished(j)]
    if len(pending) < len(chunks):
        log.info("shard %d/%d: %d of %d chunks already done", shard_index, n_shards, len(chunks) - len(pending),
                 len(chunks))
    device, model, pre, tokenizer = _setup(model_name, pretrained, device, cache_dir, offline, threads)
    size = _image_size(pre)
    k_row = frames_per_store_row(spec)
    if pending:
        pending_run = pending[:stop_after_chunks]  # None: all of them
        batches, chunk_of_batch = [], []
        for j in pending_run:
            for s in range(0, len(chunks[j]), batch_size):
                batches.append(chunks[j][s:s + batch_size])
                chunk_of_batch.append(j)
        loader, resized = make_loader(manifest, spec, size, device, min(workers, len(batches)), batch_size, batches,
                                      prefetch, resize_on)
        feats_of_chunk = []
        encoded = _encode_batches(model, pre, device, loader, resized, k_row, f"teacher shard {shard_index}")
        for b, (positions, feats) in enumerate(encoded):
            feats_of_chunk.append(feats)
            j = chunk_of_batch[b]
            if b + 1 == len(batches) or chunk_of_batch[b + 1] != j:  # the chunk's last batch: write it now
                part = {"key": key, "rows": chunks[j], "video_ids": [ids[r] for r in chunks[j]],
                        "frame_features": torch.cat(feats_of_chunk)}
                torch_save(part_file(j), part)
                feats_of_chunk = []
                if on_chunk is not None:
                    on_chunk(j, part["video_ids"])
        del encoded, loader
        if len(pending_run) < len(pending):
            return None
    parts = [torch.load(part_file(j), map_location="cpu", weights_only=True) for j in range(len(chunks))]
    shard = {
        "rows": [r for p in parts for r in p["rows"]],
        "video_ids": [v for p in parts for v in p["video_ids"]],
        "frame_features": torch.cat([p["frame_features"] for p in parts]) if parts
        else torch.zeros(0, k_row, 0, dtype=torch.float16),
        "manifest_ids": ids,
        "text_embeddings": encode_text(model, tokenizer, list(class_names), templates, device),
        "logit_scale": float(model.logit_scale.exp().item()),
        "class_names": list(class_names),
        "meta": {**_store_meta(model_name, pretrained, spec, templates, size),
                 "shard": {"index": shard_index, "of": n_shards, "assignment": assignment}},
    }
    torch_save(target, shard)
    return target


def gather(shard_files, out=None) -> dict:
    """Merge shard files into one store (load_store's format), videos in manifest order."""
    shards = [torch.load(f, map_location="cpu", weights_only=True) for f in shard_files]
    if not shards:
        raise ValueError("gather: no shard files")
    first = shards[0]
    ids = first["manifest_ids"]
    n_shards = first["meta"]["shard"]["of"]
    meta = {k: v for k, v in first["meta"].items() if k != "shard"}
    seen = sorted(s["meta"]["shard"]["index"] for s in shards)
    if seen != list(range(n_shards)):
        raise ValueError(f"gather: expected shards 0..{n_shards - 1} of {n_shards}, got {seen}")
    for f, s in zip(shard_files, shards):
        if s["manifest_ids"] != ids or {k: v for k, v in s["meta"].items() if k != "shard"} != meta \
                or s["class_names"] != first["class_names"]:
            raise ValueError(f"gather: {f} was made from another manifest or teacher configuration than {shard_files[0]}")
    rows = torch.tensor([r for s in shards for r in s["rows"]], dtype=torch.int64)
    feats = torch.cat([s["frame_features"] for s in shards])
    if sorted(rows.tolist()) != list(range(len(ids))):
        raise ValueError(f"gather: the shards cover {len(set(rows.tolist()))} of {len(ids)} videos, or some twice")
    order = torch.argsort(rows)
    store = {
        "video_ids": list(ids),
        "frame_features": feats[order].contiguous(),
        "text_embeddings": first["text_embeddings"],
        "logit_scale": first["logit_scale"],
        "class_names": first["class_names"],
        "meta": meta,
    }
    if out is not None:
        torch_save(out, store)
    return store


# --------------------------------------------------------------------------- reading a store


def load_store(path) -> dict:
    # weights_only: a feature store is plain tensors, lists and numbers, nothing to execute
    return torch.load(path, map_location="cpu", weights_only=True)


def frame_features(store: dict, video_ids) -> torch.Tensor:
    """The teacher's per-frame features of these videos [N, k, D], each L2-normalised."""
    index = {v: i for i, v in enumerate(store["video_ids"])}
    missing = [v for v in video_ids if v not in index]
    if missing:
        raise KeyError(f"teacher store lacks {len(missing)} videos, e.g. {missing[0]}; rerun `svar teacher`")
    rows = torch.as_tensor(np.array([index[v] for v in video_ids], dtype=np.int64))
    return F.normalize(store["frame_features"][rows].float(), dim=-1)


def video_features(store: dict, video_ids) -> torch.Tensor:
    """The teacher's video feature: the mean of its frame features, L2-normalised."""
    return F.normalize(frame_features(store, video_ids).mean(1), dim=-1)


def zeroshot_logits(store: dict, features: torch.Tensor) -> torch.Tensor:
    """CLIP's zero-shot logits of teacher video features (`video_features`) against the class prompts."""
    return store["logit_scale"] * features @ store["text_embeddings"].float().T
