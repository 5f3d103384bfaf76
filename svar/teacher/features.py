"""Teacher features of every video, once per dataset, in one job or in resumable shards.

The pipeline, built to keep the encoder busy:

  decode      DataLoader worker processes (spawn context: forking a process whose torch threads
              run can deadlock), each decoding whole videos, prefetching ahead of the encoder
  resize      on the device (CUDA) or in the workers (CPU): svar.teacher.preprocess
  normalise   on the device, with the model's own mean/std
  encode      bf16 autocast on CUDA (fp32 on CPU), pinned host memory, non-blocking copies

`extract` writes one store (svar.teacher.store); `extract_shard` + `gather` split the same work
over jobs, each resumable: a shard writes its finished chunks as part files (atomically) and a
restarted shard skips them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..atomic import torch_save
from ..config import default
from ..readers import CorruptFileError, load_torch
from ..receipts import check, describe, record
from ..device import autocast, job_device
from .preprocess import FrameDataset, collate_frames, image_size, to_model_input
from .prompts import class_prompts, resolve_templates
from .sampling import frames_per_store_row, sampling_spec
from .weights import RANDOM_WARNING, model_schema, create_teacher, weights_source

log = logging.getLogger(__name__)


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
        tokens = tokenizer(class_prompts(name, templates)).to(device)
        with autocast(device):
            e = F.normalize(model.encode_text(tokens).float(), dim=-1).mean(0)
        embeddings.append(F.normalize(e, dim=-1))
    if not embeddings:
        return torch.zeros(0, int(model.text_projection.shape[-1]) if hasattr(model, "text_projection") else 0)
    return torch.stack(embeddings).cpu()


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


def encode_batches(model, pre, device, loader, resized: bool, k_row: int, progress: str | None = None):
    """Yield (positions, float16 features [B, k_row, D] on the CPU) for each batch of the loader."""
    size = image_size(pre)
    for positions, frames in tqdm(loader, desc=progress, unit="batch", disable=progress is None):
        x = to_model_input(frames, size, pre, device, resized)
        feats = encode_frames(model, x, device)
        yield positions, feats.view(len(positions), k_row, -1).to(torch.float16).cpu()


def no_features(model, k_row: int) -> torch.Tensor:
    """The features of no video: [0, k_row, D], D the image encoder's output size."""
    dim = getattr(model.visual, "output_dim", None) or int(model.text_projection.shape[-1])
    return torch.zeros(0, k_row, dim, dtype=torch.float16)


def _store_meta(model_name, pretrained, spec, templates, size) -> dict:
    random_weights = weights_source(model_name, pretrained) == "random"
    return {
        "model": model_name,
        "pretrained": "random" if random_weights else str(pretrained if model_schema(model_name) is None else model_name),
        "random_weights": random_weights,
        "frames_per_video": frames_per_store_row(spec),
        "sampling": dict(spec),
        "templates": list(templates),
        "image_size": size,
    }


def _setup(model_name, pretrained, device, cache_dir, offline, threads):
    device = job_device(device, "teacher.device")
    if threads:
        torch.set_num_threads(int(threads))
    if weights_source(model_name, pretrained) == "random":
        log.warning(RANDOM_WARNING)
    model, pre, tokenizer = create_teacher(model_name, pretrained, device, cache_dir=cache_dir, offline=offline)
    return device, model, pre, tokenizer


@torch.no_grad()
def extract(manifest, class_names, out, model_name, pretrained, frames_per_video=None,
            batch_size=default("teacher.batch_size"), workers=default("teacher.workers"),
            device=default("teacher.device"), templates=default("teacher.templates"), *, sampling: dict | None = None,
            cache_dir: str | None = None, offline: bool | None = None, prefetch: int = 4,
            resize_on: str = "auto", threads: int | None = None) -> dict:
    """Encode every video of the manifest; write and return the store (see load_store)."""
    spec = sampling_spec(sampling, frames_per_video)
    templates = resolve_templates(templates)
    device, model, pre, tokenizer = _setup(model_name, pretrained, device, cache_dir, offline, threads)
    size = image_size(pre)
    loader, resized = make_loader(manifest, spec, size, device, workers, batch_size, prefetch=prefetch,
                                  resize_on=resize_on)
    chunks = [f for _, f in encode_batches(model, pre, device, loader, resized, frames_per_store_row(spec), "teacher")]
    store = {
        "video_ids": list(manifest["video_id"]),
        "frame_features": torch.cat(chunks) if chunks else no_features(model, frames_per_store_row(spec)),
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
def extract_shard(manifest, shard_index: int, n_shards: int, out_dir, model_name: str, pretrained: str | None,
                  class_names=(), *, frames_per_video: int | None = None, sampling: dict | None = None,
                  batch_size: int = default("teacher.batch_size"), chunk_size: int | None = None,
                  workers: int = default("teacher.workers"), device=default("teacher.device"),
                  templates=default("teacher.templates"), assignment: str = "strided",
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
    templates = resolve_templates(templates)
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
        try:
            part = load_torch(f, "finished chunk of a teacher shard", "teacher_shard")
        except CorruptFileError as exc:  # a resumable cache: encode that chunk again
            log.warning("%s; encoding it again", exc)
            return False
        if part.get("key") != key or part["video_ids"] != [ids[r] for r in chunks[j]]:
            log.warning("%s: made with another configuration or manifest; encoding it again", f)
            return False
        return True

    pending = [j for j in range(len(chunks)) if not finished(j)]
    if len(pending) < len(chunks):
        log.info("shard %d/%d: %d of %d chunks already done", shard_index, n_shards, len(chunks) - len(pending),
                 len(chunks))
    device, model, pre, tokenizer = _setup(model_name, pretrained, device, cache_dir, offline, threads)
    size = image_size(pre)
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
        encoded = encode_batches(model, pre, device, loader, resized, k_row, f"teacher shard {shard_index}")
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
    parts = [load_torch(part_file(j), "finished chunk of a teacher shard", "teacher_shard") for j in range(len(chunks))]
    shard = {
        "rows": [r for p in parts for r in p["rows"]],
        "video_ids": [v for p in parts for v in p["video_ids"]],
        # a shard may hold no video (more shards than videos): it gathers as nothing
        "frame_features": torch.cat([p["frame_features"] for p in parts]) if parts else no_features(model, k_row),
        "manifest_ids": ids,
        "text_embeddings": encode_text(model, tokenizer, list(class_names), templates, device),
        "logit_scale": float(model.logit_scale.exp().item()),
        "class_names": list(class_names),
        "meta": {**_store_meta(model_name, pretrained, spec, templates, size),
                 "shard": {"index": shard_index, "of": n_shards, "assignment": assignment}},
    }
    torch_save(target, shard)
    record(target)
    return target


def gather(shard_files, out=None, record_parts: bool = False) -> dict:
    """Merge shard files into one store (load_store's format), videos in manifest order. Each
    shard is checked against its record first (svar.receipts: a shard changed since rule
    teacher_shard wrote it is refused, named); with record_parts the store's record carries each
    shard's size and checksum."""
    if not shard_files:
        raise ValueError("gather: no shard files")
    for f in shard_files:
        how = check(f)
        if how is not None:
            raise ValueError(f"gather: {f}: {how} since rule teacher_shard wrote it; delete it and rerun (rule "
                             "teacher_shard makes it again)")
    parts = [{"path": str(f), **{k: v for k, v in describe(f).items() if k != "mtime_ns"}} for f in shard_files]
    shards = [load_torch(f, "teacher shard", "teacher_shard") for f in shard_files]
    first = shards[0]
    ids = first["manifest_ids"]
    n_shards = first["meta"]["shard"]["of"]
    meta = {k: v for k, v in first["meta"].items() if k != "shard"}
    _check_complete(shard_files, [(s["meta"]["shard"]["index"], s["meta"]["shard"]["of"]) for s in shards])
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
        if record_parts:
            record(out, parts=parts)
    return store


def _check_complete(shard_files, numbers) -> None:
    """Refuse a gather of shards that are not exactly shards 0..N-1 of one N, each once: name the
    missing ones (by their file, beside the first) and the extra or repeated ones."""
    n_shards = numbers[0][1]
    for f, (index, of) in zip(shard_files, numbers):
        if of != n_shards:
            raise ValueError(f"gather: {f} is shard {index} of {of}, {shard_files[0]} one of {n_shards}: give the "
                             f"{n_shards} shards of one teacher.shards")
    seen = [index for index, _ in numbers]
    twice = sorted({i for i in seen if seen.count(i) > 1})
    if twice:
        raise ValueError(f"gather: shard {twice[0]} of {n_shards} given twice; give each of the {n_shards} shards once")
    missing = [shard_path(Path(shard_files[0]).parent, i, n_shards) for i in range(n_shards) if i not in seen]
    if missing:
        raise ValueError(f"gather: {len(missing)} of {n_shards} shards missing: {', '.join(map(str, missing))} "
                         "(rule teacher_shard makes them); give all of them")

