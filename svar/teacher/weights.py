"""The teacher's weights: an open_clip model from a name and a pretrained tag, file or folder.

`create_teacher` is open_clip's one entry point, wrapped so that it never touches the network
when offline (weights come from `teacher.cache_dir`, filled by rule teacher_weights where there
is internet) and never runs code from a checkpoint: weights are loaded with `weights_only=True`
(open_clip's default, which svar never turns off), so a checkpoint that holds pickled objects
other than tensors is refused without running them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import torch

log = logging.getLogger(__name__)

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
        if not os.path.isfile(pretrained):
            raise FileNotFoundError(f"teacher.pretrained: checkpoint {pretrained} does not exist")
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
    from ..atomic import write_json
    from ..download import file_digests

    path = fetch_weights(model_name, pretrained, cache_dir)
    receipt = {"model": model_name, "pretrained": str(pretrained), "cache_dir": str(cache_dir or ""),
               "path": str(path) if path else None}
    if path and os.path.isfile(path):
        receipt.update(bytes=os.path.getsize(path), sha256=file_digests(path, ["sha256"])["sha256"])
    write_json(out, receipt)
    log.info("teacher weights of %s / %s: %s", model_name, pretrained, receipt["path"])
    return receipt

