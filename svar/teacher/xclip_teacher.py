"""The xclip backend: Hugging Face transformers' X-CLIP (Ni et al. 2022), a video-language model.

Model names (`xclip:<name>`): a Hugging Face repo (microsoft/xclip-base-patch32, -patch16, each
also -16-frames: `KNOWN_REPOS`) or svar-tiny-xclip (svar/model_configs/xclip/: a small config
for tests). Weights (`pretrained`): `hub`, the repo's snapshot, fetched once into
<teacher.cache_dir>/<ORG/REPO>/ by rule teacher_weights (`svar fetch-weights`) and read from there
offline (`local_files_only`); a folder written by `save_pretrained`; or `none`, random weights of
the model's config, warned loudly.

What it stores (svar.teacher.store), and why:
- `frame_features` [N, clips, D]: X-CLIP's own video embedding (`get_video_features`: the frames'
  CLIP features integrated over time by its multi-frame transformer, MIT), one row per clip of
  `teacher.sampling` (one row, the whole video, in modes uniform and fps). So `video_features`
  is X-CLIP's video embedding itself, not a mean of frame features; it takes exactly the frames
  its MIT was built for (the config's num_frames: 8, or 16 for the -16-frames repos).
- `text_embeddings` [C, D]: the class prompts through the text encoder and text projection,
  *unconditioned* (normalised, averaged over templates, normalised, as open_clip's): what the
  methods use as the teacher's class directions (the student's projection width, a head's init).
- `zeroshot_cosines` [N, C]: X-CLIP's zero-shot similarity of each video to each class. X-CLIP
  does not classify with a fixed text matrix: its prompt generator adds to each class embedding
  a video-specific prompt, cross-attending to the video's patch tokens (modeling_x_clip.py,
  XCLIPModel.forward: `text_embeds + prompts_generator(text_embeds, img_features)`), so the class
  embeddings differ per video. Storing them per video would be N × C × D (1.4 GB for UCF101); the
  N × C cosines they give are all zero-shot needs, and `zeroshot_logits` multiplies them by
  `logit_scale`: X-CLIP's logits_per_video on the same frames (exactly so with one template;
  with several, the conditioned embeddings are normalised, averaged and normalised again, the
  ensembling open_clip's text embeddings get; with clips, the clips' cosines are averaged).

Frames are resized as every teacher's are (svar.teacher.preprocess: shortest side, antialiased,
centre crop), resampled and normalised as the snapshot's preprocessor_config.json says (`resample`,
`image_mean`, `image_std`); X-CLIP's published ones, the defaults when a folder has none, are
bilinear and ImageNet's mean and std. Tokens: the snapshot's CLIP tokenizer; a config without one (svar's own,
a hub repo's random weights) takes open_clip's, the same BPE vocabulary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..device import autocast
from ..weights_files import WeightFile
from . import weights
from .backend_base import TEACHER_BACKENDS, LoadedTeacher, TeacherBackend
from .prompts import class_prompts
from .sampling import frames_per_store_row

log = logging.getLogger(__name__)

CONFIG_DIR = weights.MODEL_CONFIG_DIR / "xclip"
HUB = "hub"  # teacher.pretrained: the Hugging Face repo's own weights
# the published X-CLIP checkpoints svar knows the shape of before any download: (patch size,
# frames a clip). Their other sizes are XCLIPConfig's defaults (ViT-B, 512-d projection)
KNOWN_REPOS = {
    "microsoft/xclip-base-patch32": (32, 8),
    "microsoft/xclip-base-patch32-16-frames": (32, 16),
    "microsoft/xclip-base-patch16": (16, 8),
    "microsoft/xclip-base-patch16-16-frames": (16, 16),
}
# a snapshot's files: each entry any one of its names (safetensors first)
SNAPSHOT_FILES = (("config.json",), ("model.safetensors", "pytorch_model.bin"), ("vocab.json",), ("merges.txt",),
                  ("preprocessor_config.json",))
OPTIONAL_FILES = ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json")
# X-CLIP's published normalisation (its preprocessor_config.json: ImageNet's mean and std) and
# resampling (XCLIPProcessor's image processor, VideoMAEImageProcessor: PIL's bilinear)
DEFAULT_MEAN, DEFAULT_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# a preprocessor_config.json's `resample` (PIL's codes) -> svar's resize mode (svar.image.RESIZE_MODES)
PIL_RESAMPLE = {2: "bilinear", 3: "bicubic"}
DEFAULT_RESAMPLE = 2
REPO = re.compile(r"[\w.-]+/[\w.-]+")


def own_model_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))


def hub_folder(repo: str, cache_dir) -> Path:
    """Where a repo's snapshot lies: <teacher.cache_dir>/<ORG/REPO>, as open_clip's hub weights do."""
    return weights.cache_root(cache_dir) / repo


def snapshot_files(repo: str, cache_dir) -> list[WeightFile]:
    return [weights.hub_file(repo, names, cache_dir, "teacher.model", f"X-CLIP {repo}'s {names[0]}")
            for names in SNAPSHOT_FILES]


def weights_folder(model: str, pretrained, cache_dir) -> Path | None:
    """The folder the weights (and config) are read from: the hub snapshot in cache_dir, a
    save_pretrained folder; None for random weights."""
    if weights.is_random(pretrained):
        return None
    return hub_folder(model, cache_dir) if pretrained == HUB else Path(pretrained).expanduser()


def model_config(model: str, pretrained, cache_dir):
    """The XCLIPConfig of a model: its folder's config.json (a snapshot, or for random weights one
    already fetched), svar's own config, or a known repo's shape."""
    from transformers import XCLIPConfig

    for folder in (weights_folder(model, pretrained, cache_dir), hub_folder(model, cache_dir)):
        if folder is not None and (folder / "config.json").is_file():
            return XCLIPConfig.from_pretrained(folder, local_files_only=True)
    if model in own_model_names():
        return XCLIPConfig(**json.loads((CONFIG_DIR / f"{model}.json").read_text()))
    if model in KNOWN_REPOS:
        patch, frames = KNOWN_REPOS[model]
        return XCLIPConfig(vision_config={"patch_size": patch, "num_frames": frames})
    raise ValueError(f"teacher.model: xclip:{model} is neither svar's own X-CLIP config ({', '.join(own_model_names())}"
                     f", {CONFIG_DIR}) nor a repo svar knows ({', '.join(KNOWN_REPOS)}), and no config.json of it is "
                     f"in {hub_folder(model, cache_dir)}; fetch it (pretrained: hub, rule teacher_weights) or give a "
                     "save_pretrained folder as pretrained")


class XClipClassText:
    """The encoded class prompts: `embeddings` [C, D] (stored; unconditioned, see the module doc)
    and `projected` [templates, C, D], the text projection the prompt generator conditions."""

    def __init__(self, embeddings: torch.Tensor, projected: torch.Tensor):
        self.embeddings, self.projected = embeddings, projected


class LoadedXClip(LoadedTeacher):
    def __init__(self, model, preprocess: dict, tokenizer, device: torch.device):
        self.model, self.preprocess, self.tokenizer, self.device = model, preprocess, tokenizer, device
        self.logit_scale = float(model.logit_scale.exp().item())
        self.num_frames = int(model.config.vision_config.num_frames)

    def rows_per_video(self, spec: dict) -> int:
        if spec["frames"] != self.num_frames:
            raise ValueError(f"teacher.sampling.frames: {spec['frames']}, but this X-CLIP integrates "
                             f"{self.num_frames} frames a clip (its config's num_frames); set it to {self.num_frames}")
        return frames_per_store_row(spec) // spec["frames"]  # one row a clip

    def feature_dim(self) -> int:
        return int(self.model.config.projection_dim)

    def no_videos(self, k_row: int, n_classes: int) -> dict:
        return {**super().no_videos(k_row, n_classes), "zeroshot_cosines": torch.zeros(0, n_classes)}

    def _tokens(self, prompts: list[str]) -> dict:
        if hasattr(self.tokenizer, "pad_token"):  # transformers' CLIP tokenizer (a snapshot's)
            tokens = self.tokenizer(prompts, padding=True, return_tensors="pt")
            return {k: tokens[k].to(self.device) for k in ("input_ids", "attention_mask")}
        # open_clip's: padded with 0 after the end token, which the causal mask keeps out of the
        # pooled end-token output X-CLIP's text encoder returns
        return {"input_ids": self.tokenizer(prompts).to(self.device)}

    @torch.no_grad()
    def encode_text(self, class_names, templates) -> XClipClassText:
        projected = []
        for name in class_names:
            with autocast(self.device):
                projected.append(self.model.get_text_features(**self._tokens(class_prompts(name, templates)))
                                 .pooler_output.float())
        if not projected:
            dim = self.feature_dim()
            return XClipClassText(torch.zeros(0, dim), torch.zeros(len(templates), 0, dim))
        projected = torch.stack(projected, 1)  # [templates, C, D]
        embeddings = F.normalize(F.normalize(projected, dim=-1).mean(0), dim=-1)
        return XClipClassText(embeddings.cpu(), projected)

    @torch.no_grad()
    def encode_videos(self, x: torch.Tensor, n_videos: int, spec: dict, text: XClipClassText) -> dict:
        clips = self.rows_per_video(spec)
        size = x.shape[-1]
        model = self.model
        with autocast(self.device):
            out = model.get_video_features(pixel_values=x.view(n_videos * clips, spec["frames"], 3, size, size))
            video = out.pooler_output.float()  # [videos × clips, D]: after the MIT, before normalising
            # the prompt generator's visual input, as XCLIPModel.forward makes it: patch tokens,
            # layer-normed and projected, averaged over the frames
            patches = model.prompts_visual_layernorm(out.last_hidden_state[:, 1:, :]) @ model.prompts_visual_projection
            patches = patches.float().view(n_videos * clips, spec["frames"], -1, video.shape[-1]).mean(1)
            cosines = self._cosines(video, patches, text)
        return {"frame_features": video.view(n_videos, clips, -1),
                "zeroshot_cosines": cosines.view(n_videos, clips, -1).mean(1)}

    def _cosines(self, video: torch.Tensor, patches: torch.Tensor, text: XClipClassText) -> torch.Tensor:
        """[V, C] cosines of each video embedding with its own prompt-conditioned class embeddings."""
        templates, classes, dim = text.projected.shape
        if classes == 0:
            return video.new_zeros(len(video), 0)
        conditioned = 0
        for t in range(templates):
            e = text.projected[t].to(video.device).unsqueeze(0).expand(len(video), classes, dim)
            conditioned = conditioned + F.normalize((e + self.model.prompts_generator(e, patches)).float(), dim=-1)
        conditioned = F.normalize(conditioned / templates, dim=-1)
        return torch.einsum("vd,vcd->vc", F.normalize(video, dim=-1), conditioned)


def _tokenizer(folder: Path | None, config):
    if folder is not None and (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=config.text_config.max_position_embeddings)


def _preprocess(folder: Path | None, config) -> dict:
    mean, std, resample = DEFAULT_MEAN, DEFAULT_STD, DEFAULT_RESAMPLE
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        path = folder / "preprocessor_config.json"
        pre = json.loads(path.read_text())
        mean, std = tuple(pre.get("image_mean", mean)), tuple(pre.get("image_std", std))
        resample = pre.get("resample", resample)
        if resample not in PIL_RESAMPLE:
            raise ValueError(f"{path}: resample {resample!r} is not one svar resizes with "
                             f"({', '.join(f'{k}: {v}' for k, v in PIL_RESAMPLE.items())})")
    return {"size": int(config.vision_config.image_size), "mean": mean, "std": std,
            "interpolation": PIL_RESAMPLE[resample]}


@contextlib.contextmanager
def _hub_offline(offline: bool):
    """Inside: the Hugging Face client never touches the network, whatever it is asked."""
    saved = os.environ.get("HF_HUB_OFFLINE")
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if offline:
            if saved is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = saved


class XClipBackend(TeacherBackend):
    name = "xclip"
    small_model = "svar-tiny-xclip"
    models = f"a Hugging Face X-CLIP repo ({', '.join(KNOWN_REPOS)}) or svar's own config (svar-tiny-xclip)"

    def weights_source(self, model, pretrained):
        if weights.is_random(pretrained):
            return "random"
        return "hf-hub" if pretrained == HUB else "file"

    def files(self, model, pretrained, cache_dir):
        return snapshot_files(model, cache_dir) if pretrained == HUB else []

    def fetch(self, model, pretrained, cache_dir):
        source = self.weights_source(model, pretrained)
        if source == "random":
            return None
        if source == "file":
            if not (Path(pretrained) / "config.json").is_file():
                raise FileNotFoundError(f"teacher.pretrained: {pretrained} is not a save_pretrained folder of an "
                                        "X-CLIP (it has no config.json)")
            return str(pretrained)
        entries = snapshot_files(model, cache_dir)
        if all(entry.placed() for entry in entries):  # fetched before (or placed by hand): nothing to download
            return str(hub_folder(model, cache_dir))
        for entry in entries:
            weights.fetch_file(entry)
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        for name in OPTIONAL_FILES:  # the tokenizer's settings, where the repo has them
            with contextlib.suppress(EntryNotFoundError):
                hf_hub_download(model, name, local_dir=hub_folder(model, cache_dir))
        return str(hub_folder(model, cache_dir))

    def problems(self, model, pretrained, key):
        import importlib.util

        if importlib.util.find_spec("transformers") is None:
            return [f"{key}.backend: xclip needs the transformers package (pip install 'transformers>=5.25'; "
                    "svar's pyproject.toml lists it)"]
        if pretrained == weights.GENERATED:
            return [f"{key}.pretrained: {weights.GENERATED} is the generated dataset's own open_clip teacher; an "
                    f"X-CLIP teacher takes {HUB}, a save_pretrained folder or none"]
        source = self.weights_source(model, pretrained)
        if source == "hf-hub" and not REPO.fullmatch(model):
            return [f"{key}.model: xclip:{model} is not a Hugging Face repo (ORG/REPO) to fetch with pretrained {HUB}"]
        if source == "file" and not (Path(pretrained).expanduser() / "config.json").is_file():
            return [f"{key}.pretrained: {pretrained} is not a folder holding an X-CLIP's config.json and weights "
                    f"(save_pretrained writes one); give {HUB}, such a folder, or none"]
        if source == "random" and model not in own_model_names() and model not in KNOWN_REPOS:
            return [f"{key}.model: xclip:{model} with random weights needs a config svar knows: "
                    f"{', '.join(own_model_names() + tuple(KNOWN_REPOS))}"]
        return []

    def frames(self, model, cache_dir):
        try:
            return int(model_config(model, None, cache_dir).vision_config.num_frames)
        except ValueError:  # a repo not fetched yet: its frames are known once it is
            return None

    def load(self, model, pretrained, device, cache_dir=None, offline=None):
        from transformers import XCLIPModel

        offline = weights.offline_env(offline)
        folder = weights_folder(model, pretrained, cache_dir)
        if pretrained == HUB:
            missing = [entry for entry in snapshot_files(model, cache_dir) if not entry.placed()]
            if missing and offline:
                raise missing[0].missing("a teacher job with teacher.offline true")
            if missing:
                self.fetch(model, pretrained, cache_dir)
        elif folder is not None and not (folder / "config.json").is_file():
            raise FileNotFoundError(f"teacher.pretrained: {folder} holds no config.json: not a save_pretrained "
                                    "folder of an X-CLIP")
        with _hub_offline(True):  # every file is local by now: nothing below may reach the hub
            config = model_config(model, pretrained, cache_dir)
            if folder is None:
                # the same random teacher in every job and shard, and the caller's RNG untouched
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    net = XCLIPModel(config)
            else:
                net = XCLIPModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
            tokenizer = _tokenizer(folder, config)
        net.to(device).eval().requires_grad_(False)
        return LoadedXClip(net, _preprocess(folder, config), tokenizer, device)


TEACHER_BACKENDS.register(XClipBackend())
