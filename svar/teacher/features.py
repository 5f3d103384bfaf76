"""Teacher features of every video, once per dataset, in one job or in resumable shards.

Whatever the backend (svar.teacher.backends: open_clip, xclip), the pipeline and the files are
the same: the backend's LoadedTeacher turns each batch of frames into the store's per-video
tensors (svar.teacher.store.PER_VIDEO_KEYS), and this module writes, shards and gathers them.

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
from tqdm import tqdm

from ..atomic import torch_save
from ..config import default
from ..readers import CorruptFileError, load_torch
from ..receipts import check, describe, record
from ..device import autocast, job_device
from .backends import backend_name, load_teacher, weights_source
from .preprocess import FrameDataset, collate_frames, image_size, interpolation, to_model_input
from .prompts import resolve_templates
from .sampling import frames_per_store_row, sampling_spec
from .store import PER_VIDEO_KEYS
from .weights import RANDOM_WARNING, model_schema

log = logging.getLogger(__name__)


def make_loader(manifest, spec: dict, pre: dict, device: torch.device, workers: int = 0, batch_size: int = 32,
                batches=None, prefetch: int = 4, resize_on: str = "auto"):
    """The decoding DataLoader: worker processes (spawn), pinned memory on CUDA, prefetching.

    pre: the teacher's preprocess config (its input size and resize resampling).
    batches: explicit lists of manifest positions (one list per batch); default, consecutive.
    resize_on: "worker", "device", or "auto" (device on CUDA, workers on CPU; see the module doc).
    Returns (loader, resized): resized says whether the batches come already resized.
    """
    if resize_on == "auto":
        resize_on = "device" if device.type == "cuda" else "worker"
    if resize_on not in ("worker", "device"):
        raise ValueError(f"resize_on: {resize_on!r} is not worker, device or auto")
    fps = manifest["fps"] if "fps" in manifest else None
    data = FrameDataset(manifest["path"], manifest["frames"], spec["frames"],
                        image_size(pre) if resize_on == "worker" else None, fps, spec, interpolation(pre))
    if batches is None:
        batches = [list(range(s, min(s + batch_size, len(data)))) for s in range(0, len(data), batch_size)]
    kwargs = {}
    if workers > 0:
        kwargs = {"multiprocessing_context": "spawn", "persistent_workers": True, "prefetch_factor": prefetch}
    loader = torch.utils.data.DataLoader(data, batch_sampler=batches, num_workers=workers, collate_fn=collate_frames,
                                         pin_memory=device.type == "cuda", **kwargs)
    return loader, resize_on == "worker"


def encode_batches(teacher, spec: dict, text, loader, resized: bool, progress: str | None = None):
    """Yield (positions, the store's per-video tensors of the batch on the CPU: frame_features
    float16 [B, k, D], any other float32) for each batch of the loader. `text`: the teacher's
    encoded class prompts (X-CLIP conditions its zero-shot on them per video)."""
    size = image_size(teacher.preprocess)
    for positions, frames in tqdm(loader, desc=progress, unit="batch", disable=progress is None):
        x = to_model_input(frames, size, teacher.preprocess, teacher.device, resized)
        rows = teacher.encode_videos(x, len(positions), spec, text)
        yield positions, {key: rows[key].to(torch.float16 if key == "frame_features" else torch.float32).cpu()
                          for key in PER_VIDEO_KEYS if key in rows}


def concat_rows(chunks: list[dict], empty: dict) -> dict:
    """The per-video tensors of several chunks, concatenated key by key; `empty` where there is none."""
    if not chunks:
        return empty
    return {key: torch.cat([c[key] for c in chunks]) for key in chunks[0]}


def _store_meta(model_name, pretrained, spec, templates, pre: dict) -> dict:
    random_weights = weights_source(model_name, pretrained) == "random"
    return {
        "backend": backend_name(model_name),
        "model": model_name,
        "pretrained": "random" if random_weights else str(pretrained if model_schema(model_name) is None else model_name),
        "random_weights": random_weights,
        "frames_per_video": frames_per_store_row(spec),
        "sampling": dict(spec),
        "templates": list(templates),
        "image_size": image_size(pre),
        "resize": interpolation(pre),
    }


def _setup(model_name, pretrained, device, cache_dir, offline, threads):
    device = job_device(device, "teacher.device")
    if threads:
        torch.set_num_threads(int(threads))
    if weights_source(model_name, pretrained) == "random":
        log.warning(RANDOM_WARNING)
    return device, load_teacher(model_name, pretrained, device, cache_dir=cache_dir, offline=offline)


@torch.no_grad()
def extract(manifest, class_names, out, model_name, pretrained, frames_per_video=None,
            batch_size=default("teacher.batch_size"), workers=default("teacher.workers"),
            device=default("teacher.device"), templates=default("teacher.templates"), *, sampling: dict | None = None,
            cache_dir: str | None = None, offline: bool | None = None, prefetch: int = 4,
            resize_on: str = "auto", threads: int | None = None) -> dict:
    """Encode every video of the manifest; write and return the store (see load_store)."""
    spec = sampling_spec(sampling, frames_per_video)
    templates = resolve_templates(templates)
    device, teacher = _setup(model_name, pretrained, device, cache_dir, offline, threads)
    k_row = teacher.rows_per_video(spec)
    text = teacher.encode_text(class_names, templates)
    loader, resized = make_loader(manifest, spec, teacher.preprocess, device, workers, batch_size, prefetch=prefetch,
                                  resize_on=resize_on)
    chunks = [rows for _, rows in encode_batches(teacher, spec, text, loader, resized, "teacher")]
    store = {
        "video_ids": list(manifest["video_id"]),
        **concat_rows(chunks, teacher.no_videos(k_row, len(class_names))),
        "text_embeddings": text.embeddings,
        "logit_scale": teacher.logit_scale,
        "class_names": list(class_names),
        "meta": _store_meta(model_name, pretrained, spec, templates, teacher.preprocess),
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
    key = {"backend": backend_name(model_name), "model": model_name, "pretrained": str(pretrained), "sampling": spec,
           "n_videos": len(ids), "shard": [shard_index, n_shards, assignment], "chunk_size": chunk_size}

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
    device, teacher = _setup(model_name, pretrained, device, cache_dir, offline, threads)
    k_row = teacher.rows_per_video(spec)
    text = teacher.encode_text(list(class_names), templates)
    if pending:
        pending_run = pending[:stop_after_chunks]  # None: all of them
        batches, chunk_of_batch = [], []
        for j in pending_run:
            for s in range(0, len(chunks[j]), batch_size):
                batches.append(chunks[j][s:s + batch_size])
                chunk_of_batch.append(j)
        loader, resized = make_loader(manifest, spec, teacher.preprocess, device, min(workers, len(batches)),
                                      batch_size, batches, prefetch, resize_on)
        rows_of_chunk = []
        encoded = encode_batches(teacher, spec, text, loader, resized, f"teacher shard {shard_index}")
        for b, (positions, rows) in enumerate(encoded):
            rows_of_chunk.append(rows)
            j = chunk_of_batch[b]
            if b + 1 == len(batches) or chunk_of_batch[b + 1] != j:  # the chunk's last batch: write it now
                part = {"key": key, "rows": chunks[j], "video_ids": [ids[r] for r in chunks[j]],
                        **concat_rows(rows_of_chunk, {})}
                torch_save(part_file(j), part)
                rows_of_chunk = []
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
        **concat_rows([{k: p[k] for k in PER_VIDEO_KEYS if k in p} for p in parts],
                      teacher.no_videos(k_row, len(class_names))),
        "manifest_ids": ids,
        "text_embeddings": text.embeddings,
        "logit_scale": teacher.logit_scale,
        "class_names": list(class_names),
        "meta": {**_store_meta(model_name, pretrained, spec, templates, teacher.preprocess),
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
    per_video = concat_rows([{k: s[k] for k in PER_VIDEO_KEYS if k in s} for s in shards], {})
    if sorted(rows.tolist()) != list(range(len(ids))):
        raise ValueError(f"gather: the shards cover {len(set(rows.tolist()))} of {len(ids)} videos, or some twice")
    order = torch.argsort(rows)
    store = {
        "video_ids": list(ids),
        **{key: tensor[order].contiguous() for key, tensor in per_video.items()},
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

