"""The shared clip cache (svar/clips/: cache_parts, shards, receipt, store): the frames it holds are those decoding in memory
gives, training and evaluation read it without decoding and get the same weights and scores,
a shard job's memory does not grow with its videos, and a job killed with -9 resumes to the same
bytes. (Its place in the workflow: test_workflow.py's clip-cache tests.)"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

import svar.clips.cache_parts
import svar.clips.shards
from svar.clips.cache_parts import cache_reads, index_path, kept_frames, part_videos
from svar.clips.receipt import gather
from svar.clips.sampling import ClipSpec
from svar.clips.shards import TEARDOWN, WINDOW, ShardMemory, build_shard
from svar.clips.store import ClipStore, memory_test_store, memory_train_store, take_clips
from svar.config import subset
from svar.splits import make_split

from conftest import ROOT
from test_training import OPTIONS, with_options

SPLIT = 1


def cache_options(student=None, clips=2):
    """The options a part of the cache is built for (what rule clip_cache_shard passes)."""
    config = {"student": {**OPTIONS["student"], **(student or {})}, "dataset": {"split": SPLIT},
              "evaluate": {"clips": clips}}
    return {part: subset(config, cache_reads(config, part)) for part in ("train", "test")}


def build(manifest, folder, options, shards=2, chunk=0):
    """Both parts of a cache in `folder`, `shards` shards each: {part: receipt path}."""
    receipts = {}
    for part in ("train", "test"):
        files = [build_shard(manifest, part, options[part], i, shards, folder / part / f"shard_{i:03d}_of_{shards:03d}.npy",
                             chunk) for i in range(shards)]
        receipts[part] = folder / f"{part}.json"
        gather(files, receipts[part])
    return receipts


def test_cache_options_are_only_what_decides_the_pixels():
    config = {"student": dict(OPTIONS["student"]), "dataset": {"split": 1}, "evaluate": {"clips": 3}}
    assert set(cache_reads(config, "train")) == {"student.sampling", "student.frames", "student.cache_size",
                                                 "student.cache_frames", "dataset.split"}
    assert set(cache_reads(config, "test")) == set(cache_reads(config, "train")) | {"evaluate.clips"}
    config["student"]["sampling"] = "dense"
    assert "student.stride" in cache_reads(config, "train") and "student.cache_frames" not in cache_reads(config, "train")
    with pytest.raises(ValueError, match="part 'val'"):
        cache_reads(config, "val")


@pytest.mark.parametrize("student", [{}, {"sampling": "dense", "stride": 3}])
def test_kept_frames_hold_every_training_clip_and_view(student):
    options = cache_options(student, clips=3)
    spec = ClipSpec.from_options({**OPTIONS["student"], **student})
    for n in (3, 10, 37):
        train, test = kept_frames(options["train"], "train", n), kept_frames(options["test"], "test", n)
        assert (np.diff(train) > 0).all() and (np.diff(test) > 0).all()
        assert set(spec.cached_indices(n)) | set(spec.val_indices(n)) == set(train)
        assert set().union(*(spec.test_indices(n, c, 3) for c in range(3))) == set(test)
        if spec.sampling == "dense":  # validation scores a training clip: the cache holds nothing more for it
            assert set(train) == set(spec.cached_indices(n))


@pytest.mark.parametrize("n,first", [(37, 5), (10, 0), (3, 0)])
def test_dense_validation_is_the_centre_training_clip(n, first):
    """Consecutive cached frames (stride 3 apart) from the centre of the starts training draws from,
    looped over the cached frames when the video is shorter than a clip; segments: the test view."""
    spec = ClipSpec.from_options({**OPTIONS["student"], "sampling": "dense", "stride": 3})
    cached = spec.cached_indices(n)
    assert first == int(0.5 * max(len(cached) - spec.frames + 1, 1))
    assert spec.val_indices(n).tolist() == [cached[(first + k) % len(cached)] for k in range(spec.frames)]
    segments = ClipSpec.from_options(OPTIONS["student"])
    assert np.array_equal(segments.val_indices(n), segments.test_indices(n, 0, 1))


@pytest.mark.parametrize("student", [{}, {"sampling": "dense", "stride": 3}])
def test_the_shared_cache_holds_what_decoding_in_memory_gives(tiny_manifest, tmp_path, student):
    """Two shards a part, memory-mapped, give the frames `memory_train_store` / `memory_test_store` decode:
    training clips drawn with the same generator, validation and test views."""
    manifest, _ = tiny_manifest
    receipts = build(manifest, tmp_path, cache_options(student))
    shared = {part: ClipStore.open(receipts[part]) for part in receipts}
    train_ids = list(part_videos(manifest, "train", SPLIT)["video_id"])
    test_ids = list(part_videos(manifest, "test", SPLIT)["video_id"])
    assert len(shared["train"]) == len(train_ids) and len(shared["test"]) == len(test_ids)
    assert set(train_ids).isdisjoint(test_ids) and len(train_ids) + len(test_ids) == len(manifest)
    spec = ClipSpec.from_options({**OPTIONS["student"], **student})
    memory = memory_train_store(manifest, train_ids[:5], train_ids[5:8], spec)
    rows = torch.arange(5)
    assert torch.equal(take_clips(shared["train"].training_cache(train_ids[:5], spec), rows, spec,
                                  torch.Generator().manual_seed(0)),
                       take_clips(memory.training_cache(train_ids[:5], spec), rows, spec, torch.Generator().manual_seed(0)))
    val_ids = train_ids[5:8]
    assert torch.equal(shared["train"].validation_clips(val_ids, spec), memory.validation_clips(val_ids, spec))
    in_memory = memory_test_store(manifest, test_ids, spec, 2)
    for clip in (0, 1):
        assert torch.equal(shared["test"].view_clips(test_ids, spec, clip, 2), in_memory.view_clips(test_ids, spec, clip, 2))
    receipt = json.loads(receipts["train"].read_text())
    assert receipt["videos"] == len(train_ids) and len(receipt["shards"]) == 2
    assert receipt["bytes"] == sum(os.path.getsize(s["frames"]) for s in receipt["shards"])


def test_a_cache_built_for_other_settings_is_refused_by_name(tiny_manifest, tmp_path):
    manifest, _ = tiny_manifest
    receipts = build(manifest, tmp_path, cache_options(), shards=1)
    store = ClipStore.open(receipts["test"])
    test_ids = list(part_videos(manifest, "test", SPLIT)["video_id"])
    spec = ClipSpec.from_options(OPTIONS["student"])
    with pytest.raises(ValueError, match=r"test\.json lacks frames .* rebuild it \(rule clip_cache\)"):
        store.view_clips(test_ids, spec, 1, 5)  # 5 test clips: the cache holds 2
    with pytest.raises(ValueError, match="holds no video"):
        store.view_clips(list(part_videos(manifest, "train", SPLIT)["video_id"][:1]), spec, 0, 2)
    other = cache_options(clips=3)["test"]
    shard = build_shard(manifest, "test", other, 1, 2, tmp_path / "other" / "shard_001_of_002.npy")
    with pytest.raises(ValueError, match="a shard of another cache"):
        gather([tmp_path / "test" / "shard_000_of_001.npy", shard], tmp_path / "mixed.json")
    shard.write_bytes(shard.read_bytes()[:-10])  # cut short after it was written
    with pytest.raises(ValueError, match="truncated"):
        gather([shard], tmp_path / "cut.json")


def test_training_and_evaluation_read_the_cache_and_decode_nothing(tiny_manifest, tiny_store, tmp_path, monkeypatch):
    """A run trained on the shared cache has the weights of one that decoded in memory, and its
    scores from the cache's test part equal in-memory decoding's; with the cache, decoding a
    video fails the test."""
    from svar.evaluate import evaluate_runs
    from svar.trainer import train

    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    split.to_csv(tmp_path / "split.csv", index=False)
    receipts = build(manifest, tmp_path / "cache", cache_options(clips=2))
    options = with_options(train={"steps": 3, "val_every": 2})
    info = {"dataset": "synthetic", "fraction": 0.5}
    decoded = train(manifest, split, tiny_store, "fixmatch", options, tmp_path / "memory.pt", 0, info)
    settings = {"clips": 2, "crops": 1, "batch_size": 5, "device": "cpu"}
    from_memory = evaluate_runs([(tmp_path / "memory.pt", tmp_path / "split.csv", tmp_path / "memory.json")], manifest,
                                tiny_store, settings=settings)[0]

    monkeypatch.setattr(svar.clips.cache_parts, "decode_one", lambda job: pytest.fail(f"decoded {job[0]}"))
    cached = train(manifest, split, tiny_store, "fixmatch", options, tmp_path / "cached.pt", 0, info,
                   clips=receipts["train"])
    assert all(torch.equal(decoded["state_dict"][k], cached["state_dict"][k]) for k in decoded["state_dict"])
    assert decoded["meta"]["val_top1"] == cached["meta"]["val_top1"]
    from_cache = evaluate_runs([(tmp_path / "cached.pt", tmp_path / "split.csv", tmp_path / "cached.json")], manifest,
                               tiny_store, settings=settings, clips=receipts["test"])[0]
    for key in ("top1", "mean_class", "test_predictions", "per_class"):
        assert from_cache[key] == from_memory[key]


# a shard job, as rule clip_cache_shard runs it, in a child whose peak memory this process reads
CHILD = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, {root!r})
    from svar.clips.shards import build_shard, rss_mb
    from svar.manifest import load_manifest
    kill_after = int(sys.argv[3])
    on_chunk = (lambda done: os.kill(os.getpid(), signal.SIGKILL) if done >= kill_after else None) if kill_after else None
    build_shard(load_manifest(sys.argv[1]), "train", json.loads(sys.argv[2]), 0, 1, sys.argv[4], chunk=2,
                on_chunk=on_chunk)
    print(rss_mb()[1])  # its own peak (getrusage's would be this test process's, larger, kept from the fork)
""")


def shard_job(manifest_csv, options, out, kill_after=0):
    """Run one shard job in a child (killed with -9 once `kill_after` videos are recorded, if > 0);
    its peak RSS in MB, or None when it was killed."""
    script = CHILD.format(root=str(ROOT))
    result = subprocess.run([sys.executable, "-c", script, str(manifest_csv), json.dumps(options), str(kill_after),
                             str(out)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if kill_after:
        assert result.returncode == -9, result.stderr[-2000:]
        return None
    assert result.returncode == 0, result.stderr[-2000:]
    return float(result.stdout.split()[-1])


@pytest.fixture(scope="module")
def big_manifests(tiny_manifest, tmp_path_factory):
    """The tiny set's training videos listed 2 and 8 times over (new ids, the same files): at a
    cache size of 128×128 every frame kept (dense, stride 1), ~25 and ~100 MB of frames."""
    manifest, _ = tiny_manifest
    folder = tmp_path_factory.mktemp("big")
    train = manifest[manifest[f"split{SPLIT}"] != "test"]
    out = {}
    for copies in (2, 8):
        rows = pd.concat([train.assign(video_id=train["video_id"] + f"_copy{k}") for k in range(copies)])
        path = folder / f"manifest_x{copies}.csv"
        rows.to_csv(path, index=False)
        out[copies] = path
    return out


BIG = cache_options({"sampling": "dense", "stride": 1, "cache_size": [128, 128], "size": 112}, clips=1)["train"]


@pytest.mark.slow  # two shard jobs' memory measured: seconds of decoding each
def test_a_shard_job_holds_one_chunk_not_the_dataset(big_manifests, tmp_path):
    """Peak RSS of a shard job for 4× the videos (a cache ≥ 10× its chunk of 2 videos) grows by far
    less than the cache does: the frames go to disk chunk by chunk."""
    small = shard_job(big_manifests[2], BIG, tmp_path / "x2.npy")
    large = shard_job(big_manifests[8], BIG, tmp_path / "x8.npy")
    cache_mb = {k: os.path.getsize(tmp_path / f"x{k}.npy") / 1e6 for k in (2, 8)}
    index = np.load(index_path(tmp_path / "x8.npy"))
    chunk_mb = 2 * index["lengths"].max() * 128 * 128 * 3 / 1e6
    assert cache_mb[8] >= 10 * chunk_mb and cache_mb[8] - cache_mb[2] > 60
    # a job holding its frames would grow by the cache's growth (> 60 MB); this one by a few MB
    assert large - small < 20, (small, large, cache_mb)


def test_a_shard_job_killed_mid_way_resumes_to_the_same_bytes(big_manifests, tmp_path, monkeypatch):
    clean = tmp_path / "clean.npy"
    shard_job(big_manifests[2], BIG, clean)
    resumed = tmp_path / "resumed.npy"
    shard_job(big_manifests[2], BIG, resumed, kill_after=6)  # killed with -9 after 3 chunks
    partial = tmp_path / ".resumed.npy.partial"
    assert not resumed.exists() and partial.exists()
    assert json.loads((tmp_path / ".resumed.npy.partial.progress.json").read_text())["videos"] == 6
    from svar.manifest import load_manifest

    decoded, real = [], svar.clips.shards.decode_one
    monkeypatch.setattr(svar.clips.shards, "decode_one", lambda job: decoded.append(job[0]) or real(job))
    build_shard(load_manifest(big_manifests[2]), "train", BIG, 0, 1, resumed, chunk=2)
    n_videos = len(pd.read_csv(big_manifests[2]))
    assert len(decoded) == n_videos - 6  # only what the killed job had not finished
    assert resumed.read_bytes() == clean.read_bytes()
    with np.load(index_path(resumed)) as a, np.load(index_path(clean)) as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    assert not partial.exists() and not list(tmp_path.glob(".*progress*"))


def test_the_workers_and_the_chunk_fit_the_request():
    """As many decoding workers as leave room for a chunk of one video (each worker as large as the
    measured process, its window of videos waiting), else decoding in the job's own process; the
    chunk what is left, at least one video."""
    memory = ShardMemory(fixed=1000, decode=100, video=10)
    process = 1000 * (1 + TEARDOWN)
    held = lambda k: process + k * (process + 100) + (k * WINDOW + 1) * 10
    assert memory.plan(5000, 2) == (2, (5000 - held(2)) // 10)
    assert memory.plan(8000, 4) == (4, (8000 - held(4)) // 10)
    assert held(3) > 5000 and memory.plan(5000, 4)[0] == 2   # 3 or 4 workers do not fit
    assert memory.plan(3000, 2) == (1, (3000 - process - 110) // 10)  # no worker fits: in this process
    assert memory.plan(5000, 1) == (1, (5000 - process - 110) // 10)  # one decoding process asked for
    assert memory.plan(1000, 2) == (1, 1) and memory.floor() > 1000


def test_a_request_below_the_measured_floor_is_named(tiny_manifest, tmp_path, caplog):
    manifest, _ = tiny_manifest
    with caplog.at_level("WARNING"):
        build_shard(manifest, "train", cache_options()["train"], 0, 2, tmp_path / "s.npy", memory_mb=10)
    assert "raise resources.clip_cache.mem_mb to" in caplog.text


@pytest.fixture(scope="module")
def ucf_shaped(tmp_path_factory):
    """8 training videos of UCF101's shape (320×240, 150–200 frames: workflow/config/scale.yaml's
    dataset.synthetic) and their manifest."""
    from svar.datasets.synthetic import DEFAULT_CLASSES, SyntheticSpec, generate
    from svar.manifest import write_index

    out = tmp_path_factory.mktemp("ucf_shaped")
    generate(out / "synthetic", SyntheticSpec(classes=DEFAULT_CLASSES[:4], width=320, height=240, min_frames=150,
                                              max_frames=200, groups=3, clips_per_group=1, test_groups=1,
                                              pretrain_videos=0), workers=2)
    write_index(out / "synthetic" / "videos", out / "synthetic" / "splits", out / "manifest.csv",
                out / "exclusions.csv", out / "classes.csv")
    return out / "manifest.csv"


def _tree_peak_mb(pid: int, stop, peaks: dict) -> None:
    """Until `stop` is set, every 5 ms: the peak RSS (the kernel's VmHWM) of `pid` and of each of
    its descendants, by pid, into `peaks`. (Not wait4's ru_maxrss: a child keeps its parent's at
    the fork, here this test process's.) A child read between its fork and its exec shows its
    parent's memory (a vfork shares it; nothing is charged twice), so a pid's peak counts from its
    last exec on: it is reset when the pid's command line changes."""
    from pathlib import Path

    images = {}
    while not stop.is_set():
        todo = [pid]
        while todo:
            p = todo.pop()
            for task in Path(f"/proc/{p}/task").glob("*"):
                try:
                    todo += [int(c) for c in (task / "children").read_text().split()]
                except OSError:
                    pass
            try:
                cmdline = Path(f"/proc/{p}/cmdline").read_bytes()
                hwm = next(line for line in Path(f"/proc/{p}/status").read_text().splitlines()
                           if line.startswith("VmHWM:"))
                if images.get(p) != cmdline:  # a new image: the kernel restarted its VmHWM at the exec
                    images[p], peaks[p] = cmdline, 0
                peaks[p] = max(peaks[p], int(hwm.split()[1]) / 1024)
            except (OSError, StopIteration):
                pass
        stop.wait(0.005)


# the UCF101 student's clips (workflow/config/scale.yaml): dense 16 × 4, cached at 128 × 171
UCF_SHAPED = cache_options({"sampling": "dense", "stride": 4, "frames": 16, "cache_size": [128, 171],
                            "size": 112}, clips=1)["train"]


@pytest.mark.slow  # shard jobs' memory measured at two requests: seconds of decoding each
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the process tree's memory from /proc")
def test_a_shard_job_with_its_workers_stays_within_its_request(ucf_shaped, tmp_path):
    """`svar clip-cache --workers 2` on UCF101-shaped videos: the job's peak memory — the sum of
    its own peak and each decoding worker's (sampled from /proc) — stays under --memory-mb; 2000 MB
    does not hold two workers beside the job (each loads torch and the decoders: about 1 GB here),
    5000 MB does; the bytes are the same either way."""
    import threading

    peaks_mb, logs, plans = {}, {}, {}
    for request in (2000, 5000):
        out = tmp_path / f"shard_{request}.npy"
        proc = subprocess.Popen([sys.executable, "-m", "svar", "clip-cache", "--manifest", str(ucf_shaped),
                                 "--part", "train", "--options", json.dumps(UCF_SHAPED), "--workers", "2",
                                 "--memory-mb", str(request), "--out", str(out)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        processes, stop = {}, threading.Event()
        sampler = threading.Thread(target=_tree_peak_mb, args=(proc.pid, stop, processes), daemon=True)
        sampler.start()
        logs[request] = proc.stdout.read()
        assert proc.wait() == 0, logs[request][-2000:]
        stop.set()
        sampler.join()
        peaks_mb[request] = sum(processes.values())
        plans[request] = next(line for line in logs[request].splitlines() if "memory: this process" in line)
        assert peaks_mb[request] < request, (request, peaks_mb[request], processes, plans[request])
    assert "decoding in this process" in plans[2000] and "2 decoding workers" in plans[5000], plans
    assert (tmp_path / "shard_2000.npy").read_bytes() == (tmp_path / "shard_5000.npy").read_bytes()
