"""Video decoding behind one small interface: decord first, PyAV where decord fails.

Everything that reads pixels (index, teacher, train, evaluate, probe) goes through
`read_frames` and `probe_video`, so a file that one library cannot open (AV1 for old decord
builds, some broken containers) is retried with the other, and a file that neither can read
raises `VideoDecodeError` naming the file and both reasons.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

DECODERS = ("decord", "pyav")

# spawn, not fork: forking a process whose torch/OpenMP threads are running can deadlock
SPAWN = multiprocessing.get_context("spawn")

# what a decoding worker's thread pools may use: one thread each. torch (resizing), OpenMP, MKL
# and OpenBLAS size their pools from these at import, so `workers` processes use `workers` cores
# (left alone, each worker's torch takes every core: 8 workers × 8 threads on 8 cores)
WORKER_THREAD_LIMITS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@contextlib.contextmanager
def _worker_environment():
    """os.environ with WORKER_THREAD_LIMITS while worker processes are spawned (they inherit it;
    this process's pools are sized already), restored after."""
    saved = {key: os.environ.get(key) for key in WORKER_THREAD_LIMITS}
    os.environ.update(WORKER_THREAD_LIMITS)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def map_videos(fn, items: list, workers: int, desc: str) -> list:
    """fn over items, in order, with a progress bar: in `workers` spawned processes, or in this one
    (workers <= 1, or fewer than two items). fn must be a module-level function (picklable)."""
    if workers <= 1 or len(items) < 2:
        return [fn(item) for item in tqdm(items, desc=desc, unit="video")]
    # the pool spawns its workers as pool.map submits the items: all of them inside the block
    with _worker_environment(), ProcessPoolExecutor(max_workers=workers, mp_context=SPAWN) as pool:
        return list(tqdm(pool.map(fn, items, chunksize=8), total=len(items), desc=desc, unit="video"))


def iter_videos(fn, items: list, workers: int, desc: str, window: int = 4):
    """fn over items, yielded in order as they finish, with a progress bar: in `workers` spawned
    processes (one pool for all the items), or in this one. At most `window` × workers results
    wait to be consumed, so a slow consumer (a writer) holds a bounded number of decoded videos."""
    bar = tqdm(total=len(items), desc=desc, unit="video")
    try:
        if workers <= 1 or len(items) < 2:
            for item in items:
                yield fn(item)
                bar.update()
            return
        with _worker_environment(), ProcessPoolExecutor(max_workers=workers, mp_context=SPAWN) as pool:
            pending, next_item = [], 0
            while pending or next_item < len(items):
                while next_item < len(items) and len(pending) < window * workers:
                    pending.append(pool.submit(fn, items[next_item]))
                    next_item += 1
                yield pending.pop(0).result()
                bar.update()
    finally:
        bar.close()


class VideoDecodeError(RuntimeError):
    """No decoder could read the video; the message names the file and each decoder's error."""


@dataclass
class VideoInfo:
    path: str
    frames: int  # frames actually decoded, not the container's claim
    fps: float
    width: int
    height: int
    codec: str
    decoder: str

    def as_dict(self) -> dict:
        return asdict(self)


def uniform_indices(n_frames: int, k: int, offset: float = 0.5) -> np.ndarray:
    """k frame indices spread evenly over n_frames: the centre of k equal segments by default.

    `offset` in [0, 1) picks the position inside each segment (training jitters it).
    """
    if n_frames <= 0:
        raise ValueError("a video with no frames has no indices")
    seg = n_frames / k
    idx = np.floor(seg * (np.arange(k) + offset)).astype(np.int64)
    return np.clip(idx, 0, n_frames - 1)


# --------------------------------------------------------------------------- decord


def _decord_reader(path: str):
    import decord

    # one thread per reader: parallelism comes from worker processes, not from decord
    return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)


def _decord_read(path: str, indices: np.ndarray) -> np.ndarray:
    vr = _decord_reader(path)
    n = len(vr)
    if n == 0:
        raise RuntimeError("decord found no frames")
    return vr.get_batch(np.clip(indices, 0, n - 1).tolist()).asnumpy()


def _decord_probe(path: str) -> VideoInfo:
    vr = _decord_reader(path)
    claimed = len(vr)
    if claimed == 0:
        raise RuntimeError("decord found no frames")
    # decode every frame: a container's frame count can be wrong, and a file that only
    # fails half-way must not pass as decodable
    count = 0
    for start in range(0, claimed, 64):
        batch = vr.get_batch(list(range(start, min(start + 64, claimed)))).asnumpy()
        count += batch.shape[0]
    h, w = batch.shape[1:3]
    return VideoInfo(path, count, float(vr.get_avg_fps()), int(w), int(h), _codec_name(path), "decord")


# --------------------------------------------------------------------------- PyAV


def _pyav_frames(path: str):
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def _pyav_read(path: str, indices: np.ndarray) -> np.ndarray:
    wanted = set(int(i) for i in indices)
    last = max(wanted)
    kept: dict[int, np.ndarray] = {}
    frame = None
    n = 0
    for n, frame in enumerate(_pyav_frames(path)):
        if n in wanted:
            kept[n] = frame
        if n >= last:
            break
    if frame is None:
        raise RuntimeError("PyAV decoded no frames")
    # indices past the real end (a container that overstates its length) take the last frame
    return np.stack([kept.get(int(i), frame) for i in indices])


def _pyav_probe(path: str) -> VideoInfo:
    import av

    count, size = 0, None
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        codec = stream.codec_context.name
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):  # decoded, not converted: counting is cheap
            count += 1
            size = size or (frame.width, frame.height)
    if count == 0:
        raise RuntimeError("PyAV decoded no frames")
    return VideoInfo(path, count, fps, int(size[0]), int(size[1]), codec, "pyav")


def _codec_name(path: str) -> str:
    try:
        import av

        with av.open(path) as container:
            return container.streams.video[0].codec_context.name
    except Exception:  # the codec name is informative only
        return "unknown"


_READERS = {"decord": _decord_read, "pyav": _pyav_read}
_PROBES = {"decord": _decord_probe, "pyav": _pyav_probe}


def _try_each(path: str, calls: dict, decoders: tuple[str, ...]):
    if not os.path.exists(path):
        raise VideoDecodeError(f"{path}: no such file")
    errors = []
    for name in decoders:
        try:
            return calls[name](path)
        except Exception as exc:  # any decoder failure means: try the next one
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    raise VideoDecodeError(f"{path}: no decoder could read it ({'; '.join(errors)})")


def read_frames(path: str, indices, decoders: tuple[str, ...] = DECODERS) -> np.ndarray:
    """Frames at `indices` as uint8 RGB, shape (len(indices), H, W, 3)."""
    indices = np.asarray(indices, dtype=np.int64)
    return _try_each(path, {n: (lambda p, f=_READERS[n]: f(p, indices)) for n in decoders}, decoders)


# Probing counts frames with PyAV first: decord pads some streams with copies of the last frame
# (torchcodec_discard_first_keyframe.mp4: decord says 30 frames, 25 exist), and a manifest must
# state the frames that really decode. decord probes what PyAV cannot open.
PROBE_ORDER = ("pyav", "decord")


def probe_video(path: str, decoders: tuple[str, ...] = PROBE_ORDER) -> VideoInfo:
    """Decode the whole video once; report frames decoded, fps, size, codec and decoder used."""
    return _try_each(path, _PROBES, decoders)


def decoder_versions() -> dict[str, str]:
    """The installed version of each decoder's module, from its distribution's metadata: importing
    a decoder to ask would load it into a process that may decode nothing (decord2 3.4.0 loads
    every CUDA library of the environment when imported; with PyAV they took a clip cache shard
    job of the default config from 556 to 987 MB)."""
    from importlib import metadata

    distributions = metadata.packages_distributions()
    versions = {}
    for module in ("decord", "av"):
        try:
            versions[module] = metadata.version(distributions[module][0])
        except (KeyError, IndexError, metadata.PackageNotFoundError):
            versions[module] = "missing"
    return versions
