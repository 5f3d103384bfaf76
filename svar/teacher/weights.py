"""The teacher's weights: an open_clip model from a name and a pretrained tag, file or folder.

`create_teacher` is open_clip's one entry point, wrapped so that it never touches the network
when offline (weights come from `teacher.cache_dir`, filled by rule teacher_weights or `svar
fetch-weights` where there is internet, or by hand: `teacher_files` says where each file goes)
and never runs code from a checkpoint: weights are loaded with `weights_only=True` (open_clip's
default, which svar never turns off), so a checkpoint that holds pickled objects other than
tensors is refused without running them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from ..weights_files import WeightFile


MODEL_CONFIG_DIR = Path(__file__).resolve().parents[1] / "model_configs"
RANDOM_WARNING = (
    "TEACHER WEIGHTS ARE RANDOM (pretrained: none): the teacher's features carry no learned "
    "knowledge, so distillation, pseudo-label and CLIP baseline numbers are meaningless")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz")
# teacher.pretrained's name for the checkpoint rule pretrain_teacher trains on the generated dataset
GENERATED = "generated"


def pretrained_file(pretrained: str, results: str) -> str:
    """teacher.pretrained as a loadable source: `generated` is the checkpoint rule
    pretrain_teacher writes into the config's results folder; anything else is itself."""
    return f"{results}/teacher/pretrained.pt" if pretrained == GENERATED else pretrained


def register_model_configs() -> None:
    """Make svar's own model configs (e.g. svar-tiny-clip) known to open_clip."""
    import open_clip

    open_clip.add_model_config(MODEL_CONFIG_DIR)


def own_model_names() -> tuple[str, ...]:
    """svar's own model configs' names (MODEL_CONFIG_DIR/<name>.json), known without importing
    open_clip (which costs the Snakefile's config check seconds at every Snakemake start)."""
    return tuple(sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json")))


def is_random(pretrained: str | None) -> bool:
    return pretrained in (None, "", "none")


def model_schema(model_name: str) -> str | None:
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
    schema = model_schema(model_name)
    if schema is not None:
        return schema
    if is_random(pretrained):
        return "random"
    return "file" if _is_file_spec(pretrained) else "tag"


def offline_env(offline: bool | None) -> bool:
    if offline is not None:
        return bool(offline)
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# ------------------------------------------------------------------ where downloaded weights lie


def cache_root(cache_dir) -> Path:
    """teacher.cache_dir; open_clip's own default cache folder when none is given."""
    return Path(cache_dir or "~/.cache/clip").expanduser()


def _hub_names(filename: str) -> tuple[str, ...]:
    """The names open_clip accepts for a weights file on the hub: safetensors first, as open_clip
    tries them (open_clip.pretrained.download_pretrained_from_hf)."""
    from open_clip.constants import HF_WEIGHTS_NAME
    from open_clip.pretrained import _get_safe_alternatives

    filename = filename or HF_WEIGHTS_NAME
    return (*_get_safe_alternatives(filename), filename)


def hub_file(repo: str, names, cache_dir, key: str, what: str) -> WeightFile:
    from huggingface_hub import hf_hub_url

    names = tuple(names)
    return WeightFile(key, "teacher.cache_dir", what, cache_root(cache_dir) / repo, names,
                      hf_hub_url(repo, names[0]), repo=repo, rule="teacher_weights")


def _tag_files(cfg: dict, cache_dir, what: str) -> list[WeightFile]:
    """Where an open_clip pretrained tag's weights lie: <cache_dir>/<hub repo>/<file> for the
    Hugging Face file open_clip takes (every tag of open_clip 3.3 names one), else <cache_dir>/
    <the URL's file name>."""
    if cfg.get("hf_hub"):
        # "org/repo/file", or "org/repo/" for the repo's default weights file (open_clip's convention)
        repo, filename = os.path.split(cfg["hf_hub"])
        return [hub_file(repo, _hub_names(filename), cache_dir, "teacher.pretrained", what)]
    url = cfg.get("url", "")
    return [WeightFile("teacher.pretrained", "teacher.cache_dir", what, cache_root(cache_dir),
                       (os.path.basename(url),), url, rule="teacher_weights")] if url else []


def teacher_files(model_name: str, pretrained: str | None, cache_dir) -> list[WeightFile]:
    """The files a teacher's weights are downloaded as (none for a checkpoint file, a local-dir
    folder or random weights): a tag's weights, or an hf-hub: model's config and weights, each in
    <cache_dir>/<its Hugging Face repo>/."""
    import open_clip

    source = weights_source(model_name, pretrained)
    if source == "hf-hub":
        from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

        repo = model_name.split(":", 1)[1]
        what = f"open_clip model {model_name}"
        return [hub_file(repo, (HF_CONFIG_NAME,), cache_dir, "teacher.model", f"{what} (its config)"),
                hub_file(repo, (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME), cache_dir, "teacher.model",
                          f"{what} (its weights)")]
    if source != "tag":
        return []
    register_model_configs()
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not cfg:
        raise ValueError(f"teacher.pretrained: {pretrained!r} is neither a checkpoint file nor a pretrained tag of "
                         f"{model_name}; its tags: {open_clip.list_pretrained_tags_by_model(model_name)}")
    return _tag_files(cfg, cache_dir, f"open_clip's {model_name} / {pretrained} weights")


def _cached_pretrained(cfg: dict, cache_dir=None, what: str = "the weights", offline: bool = True,
                       download=None) -> str:
    """The local file of an open_clip pretrained tag: its place in cache_dir (`_tag_files`), else
    where open_clip's own download left it in cache_dir (the Hugging Face cache layout, or the
    URL's file name). Missing: offline, an error naming the file, its folder key and its URL;
    online, `download(cfg)` (open_clip's)."""
    if "file" in cfg:
        return cfg["file"]
    files = _tag_files(cfg, cache_dir, what)
    for entry in files:
        if entry.placed():
            return str(entry.placed())
    for entry in files:
        if entry.repo:
            from huggingface_hub import hf_hub_download

            for name in entry.names:
                try:
                    return hf_hub_download(repo_id=entry.repo, filename=name, cache_dir=cache_dir,
                                           local_files_only=True)
                except Exception:  # not cached under this name: try the next
                    pass
    url = cfg.get("url", "")
    if url and (cache_root(cache_dir) / os.path.basename(url)).is_file():
        return str(cache_root(cache_dir) / os.path.basename(url))
    if not offline and download is not None:
        return download(cfg)
    if not files:
        raise FileNotFoundError(f"teacher.pretrained: {what}: open_clip names no file to download for it")
    raise files[0].missing("a teacher job with teacher.offline true")


@contextlib.contextmanager
def _weights_from_cache(cache_dir=None, offline: bool = True):
    """Inside: open_clip takes a tag's weights from cache_dir when they are there; offline, from
    there only (the Hugging Face client offline too), else it downloads them as usual."""
    import open_clip.factory

    saved_download = open_clip.factory.download_pretrained
    hub_constants, saved_flag = None, None
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    if offline:
        try:
            import huggingface_hub.constants as hub_constants

            saved_flag = hub_constants.HF_HUB_OFFLINE
            hub_constants.HF_HUB_OFFLINE = True
        except ImportError:
            pass
        os.environ["HF_HUB_OFFLINE"] = "1"

    def download(cfg, prefer_hf_hub=True, cache_dir=cache_dir):
        return _cached_pretrained(cfg, cache_dir, offline=offline,
                                  download=lambda c: saved_download(c, prefer_hf_hub, cache_dir))

    open_clip.factory.download_pretrained = download
    try:
        yield
    finally:
        open_clip.factory.download_pretrained = saved_download
        if hub_constants is not None:
            hub_constants.HF_HUB_OFFLINE = saved_flag
        if offline:
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
    if model_schema(model_name) == "local-dir":
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
    offline = offline_env(offline)
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
    guard = contextlib.nullcontext()
    quick_gelu = False
    if source == "tag":
        what = f"open_clip's {model_name} / {pretrained} weights"
        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        if not tag_cfg:
            raise ValueError(f"teacher.pretrained: {pretrained!r} is neither a checkpoint file nor a pretrained "
                             f"tag of {model_name}; its tags: {open_clip.list_pretrained_tags_by_model(model_name)}")
        if offline:  # fail early and clearly, before building the model
            _cached_pretrained(tag_cfg, cache_dir, what)
        guard = _weights_from_cache(cache_dir, offline)
        # OpenAI's CLIP weights (tag openai) were trained with QuickGELU; open_clip's ViT-B-32,
        # ViT-B-16 ... configs use GELU and only warn of the mismatch, which runs the weights with
        # the wrong activation: build the model the tag was trained as
        quick_gelu = bool(tag_cfg.get("quick_gelu", False))
    if source == "hf-hub":
        config_file, weights_file = teacher_files(model_name, pretrained, cache_dir)
        if config_file.placed() or offline:
            for entry in (config_file, weights_file):
                if not entry.placed():
                    raise entry.missing("a teacher job with teacher.offline true" if offline else
                                        "svar, with part of the model in place,")
            # fetched (or placed by hand) into cache_dir: open_clip reads the folder as it is
            model_name, source = f"local-dir:{config_file.folder}", "local-dir"
    random_weights = source == "random"
    try:
        with guard, torch.random.fork_rng(devices=[], enabled=random_weights):
            if random_weights:  # the same random teacher in every job and shard, and the caller's RNG untouched
                torch.manual_seed(0)
            model = open_clip.create_model(model_name, pretrained=pretrained if source in ("file", "tag") else None,
                                           device=device, cache_dir=cache_dir, weights_only=True,
                                           force_quick_gelu=quick_gelu)
    except Exception as exc:
        if _unsafe_pickle(exc):
            raise ValueError(
                f"teacher.pretrained: {_weights_file(model_name, pretrained)} holds objects that are not tensors; "
                "svar loads weights only (torch.load weights_only=True) and never runs code from a checkpoint. "
                "Save a plain state dict (torch.save(model.state_dict(), ...)) or safetensors instead") from None
        raise
    model.eval().requires_grad_(False)
    return model, open_clip.get_model_preprocess_cfg(model), open_clip.get_tokenizer(model_name, cache_dir=cache_dir)


def fetch_file(entry: WeightFile) -> Path:
    """A file of downloaded weights where it belongs (`teacher_files`): kept when it is there,
    else downloaded, from the hub (under each of its names in turn, as open_clip tries them) or
    from its URL. A machine that cannot download says so at once, with what to do instead."""
    from ..download import download, offline_reason

    placed = entry.placed()
    if placed:
        return placed
    reason = offline_reason(entry.url)
    if reason:
        raise entry.unreachable(reason)
    if not entry.repo:
        return download(entry.url, entry.path, what=entry.what, by_hand=entry.by_hand())
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    for name in entry.names:
        try:  # local_dir: the file itself at <folder>/<name>, not the hub's cache layout
            return Path(huggingface_hub.hf_hub_download(entry.repo, name, local_dir=entry.folder))
        except EntryNotFoundError:  # not published under this name: the next
            pass
    raise FileNotFoundError(f"{entry.key}: {entry.what}: the Hugging Face repo {entry.repo} has none of "
                            f"{', '.join(entry.names)}; check the model or tag (open_clip's registry names it)")


def fetch_weights(model_name: str, pretrained: str | None, cache_dir: str | None) -> str | None:
    """Download a teacher's weights into cache_dir (rule teacher_weights, `svar fetch-weights`:
    where there is internet): the files `teacher_files` lists, each in its place.

    Returns the local file (or folder) that `create_teacher(..., cache_dir=cache_dir, offline=True)`
    then reads; None for random weights. Checkpoint files and local-dir folders need no download.
    """
    source = weights_source(model_name, pretrained)
    if source == "local-dir":
        return model_name.split(":", 1)[1]
    if source == "random":
        return None
    if source == "file":
        if not os.path.isfile(pretrained):
            raise FileNotFoundError(f"teacher.pretrained: checkpoint {pretrained} does not exist")
        return pretrained
    # a tag's weights; an hf-hub: model's config, then its weights (the file the receipt names)
    return str([fetch_file(entry) for entry in teacher_files(model_name, pretrained, cache_dir)][-1])
