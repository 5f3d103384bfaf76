"""Teacher extraction at scale: safe weights, offline loading, sampling, preprocessing that matches
open_clip's own, parallel decoding, and sharded, resumable feature stores."""

import json
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from svar.image import resize_center_crop
from svar.teacher import features, openclip_teacher
from svar.teacher.features import extract, extract_shard, gather
from svar.teacher.preprocess import to_model_input
from svar.teacher.sampling import sample_indices, sampling_spec
from svar.teacher.store import load_store
from svar.teacher.weights import create_teacher, fetch_weights, register_model_configs

FIXTURE_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "videos"
CPU = torch.device("cpu")


class _Payload:
    """Unpickling this would write a file: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("svar touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_checkpoint_with_code_is_refused_without_running_it(tmp_path):
    register_model_configs()
    import open_clip

    state = open_clip.create_model("svar-tiny-clip").state_dict()
    marker = tmp_path / "pwned.txt"
    ckpt = tmp_path / "evil.pt"
    torch.save({**state, "extra": _Payload(marker)}, ckpt)
    with pytest.raises(ValueError, match=r"teacher.pretrained: .*evil.pt holds objects that are not tensors; "
                                         r"svar loads weights only"):
        create_teacher("svar-tiny-clip", str(ckpt), CPU)
    assert not marker.exists()
    # the same file through a local-dir folder: refused too
    folder = tmp_path / "evil_dir"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": open_clip.get_model_config("svar-tiny-clip")}))
    torch.save({**state, "extra": _Payload(marker)}, folder / "open_clip_pytorch_model.bin")
    with pytest.raises(ValueError, match="open_clip_pytorch_model.bin holds objects that are not tensors"):
        create_teacher(f"local-dir:{folder}", None, CPU)
    assert not marker.exists()


def test_checkpoint_file_and_local_dir_load_offline(tmp_path, no_network):
    register_model_configs()
    import open_clip

    torch.manual_seed(1)
    model = open_clip.create_model("svar-tiny-clip")
    state = model.state_dict()
    ckpt = tmp_path / "weights.pt"
    torch.save(state, ckpt)
    loaded, pre, tokenizer = create_teacher("svar-tiny-clip", str(ckpt), CPU, offline=True)
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())

    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": open_clip.get_model_config("svar-tiny-clip"),
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}))
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    loaded, pre, tokenizer = create_teacher(f"local-dir:{folder}", None, CPU, offline=True)
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
    assert tuple(pre["mean"]) == (0.5, 0.5, 0.5) and pre["size"] in (64, (64, 64))
    assert tokenizer(["a red square"]).shape[-1] == 24

    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        create_teacher(f"local-dir:{tmp_path / 'nowhere'}", None, CPU)


def test_offline_tag_and_hub_name_never_touch_the_network(tmp_path, no_network):
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError,
                       match=r"ViT-B-32 / openai weights: .*cache.* does not exist.*teacher_weights"):
        create_teacher("ViT-B-32", "openai", CPU, cache_dir=str(cache), offline=True)
    # hf-hub: names are looked for in cache_dir too, and never on the hub
    with pytest.raises(FileNotFoundError, match="teacher_weights"):
        create_teacher("hf-hub:nobody/no-such-clip", None, CPU, cache_dir=str(cache), offline=True)
    with pytest.raises(ValueError, match="neither a checkpoint file nor a pretrained tag"):
        create_teacher("ViT-B-32", "no-such-tag", CPU, offline=True)


@pytest.mark.parametrize("offline", [True, False])
def test_offline_tag_loads_from_the_cache_dir(tmp_path, no_network, offline):
    """A tag's weights placed in cache_dir by hand (or by rule teacher_weights), under the name and
    folder `svar fetch-weights --list` gives, load without the network, offline or not."""
    import open_clip
    from safetensors.torch import save_file

    cfg = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    cache = tmp_path / "cache"
    repo = cfg["hf_hub"].rstrip("/")  # timm/vit_base_patch32_clip_224.openai/: the repo's default file
    (cache / repo).mkdir(parents=True)
    torch.manual_seed(0)
    state = open_clip.create_model("ViT-B-32").state_dict()
    save_file(state, cache / repo / "open_clip_model.safetensors")  # the Hub's file name
    model, pre, _ = create_teacher("ViT-B-32", "openai", CPU, cache_dir=str(cache), offline=offline)
    assert torch.equal(model.visual.proj, state["visual.proj"])
    assert tuple(pre["mean"]) == tuple(cfg["mean"])
    # OpenAI's weights run with the activation they were trained with (open_clip's ViT-B-32
    # config has GELU and only warns of the mismatch)
    activation = model.visual.transformer.resblocks[0].mlp.gelu
    assert cfg["quick_gelu"] and isinstance(activation, open_clip.transformer.QuickGELU)


def test_hf_hub_model_placed_in_the_cache_dir_loads_offline(tmp_path, no_network):
    """An hf-hub: model's config and weights in <cache_dir>/<org>/<repo>/ load without the network."""
    register_model_configs()
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path / "cache" / "someorg" / "tiny-clip"
    folder.mkdir(parents=True)
    config = {"model_cfg": open_clip.get_model_config("svar-tiny-clip")}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match=r"teacher.model: .*\(its weights\): .*tiny-clip/open_clip_model"):
        create_teacher("hf-hub:someorg/tiny-clip", None, CPU, cache_dir=str(tmp_path / "cache"), offline=False)
    torch.manual_seed(2)
    state = open_clip.create_model("svar-tiny-clip").state_dict()
    save_file(state, folder / "open_clip_model.safetensors")
    model, _, tokenizer = create_teacher("hf-hub:someorg/tiny-clip", None, CPU, cache_dir=str(tmp_path / "cache"),
                                         offline=True)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert tokenizer(["a red square"]).shape[-1] == 24


def test_fetch_weights_puts_hub_files_in_their_folder(monkeypatch, tmp_path):
    """Rule teacher_weights: a tag's or an hf-hub: model's files from the hub into
    <cache_dir>/<repo>/ (the place `svar fetch-weights --list` names), safetensors first, as
    open_clip tries them; a file already there is kept without the network."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    from svar import download

    calls = []

    def hub_download(repo, filename, local_dir=None, **kw):
        calls.append((repo, filename, str(local_dir)))
        if filename == "open_clip_model.safetensors" and repo == "org/repo":
            raise EntryNotFoundError("not published as safetensors")
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / filename).write_bytes(b"weights")
        return str(Path(local_dir) / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub_download)
    monkeypatch.setattr(download, "offline_reason", lambda url: None)
    repo = "timm/vit_base_patch32_clip_224.openai"
    expected = tmp_path / repo / "open_clip_model.safetensors"
    assert fetch_weights("ViT-B-32", "openai", str(tmp_path)) == str(expected)
    assert calls == [(repo, "open_clip_model.safetensors", str(tmp_path / repo))]
    assert fetch_weights("ViT-B-32", "openai", str(tmp_path)) == str(expected) and len(calls) == 1  # kept
    weights = fetch_weights("hf-hub:org/repo", None, str(tmp_path))
    assert weights == str(tmp_path / "org/repo/open_clip_pytorch_model.bin")
    assert calls[1:] == [("org/repo", "open_clip_config.json", str(tmp_path / "org/repo")),
                         ("org/repo", "open_clip_model.safetensors", str(tmp_path / "org/repo")),
                         ("org/repo", "open_clip_pytorch_model.bin", str(tmp_path / "org/repo"))]
    assert fetch_weights("svar-tiny-clip", "none", str(tmp_path)) is None
    checkpoint = tmp_path / "x" / "pretrained.pt"
    with pytest.raises(FileNotFoundError, match="pretrained.pt does not exist"):
        fetch_weights("svar-tiny-clip", str(checkpoint), str(tmp_path))
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    assert fetch_weights("svar-tiny-clip", str(checkpoint), str(tmp_path)) == str(checkpoint)  # nothing to fetch
    assert len(calls) == 4


def test_sampling_modes():
    assert list(sample_indices(16, 25.0, sampling_spec(None, 4))) == [2, 6, 10, 14]
    fps = sampling_spec({"mode": "fps", "fps": 5}, 3)
    assert list(sample_indices(101, 25.0, fps)) == [45, 50, 55]  # 5 source frames apart, centred
    assert list(sample_indices(4, 25.0, fps)) == [0, 2, 3]  # clamped to a short video's ends
    clips = sampling_spec({"mode": "clips", "clips": 2, "frames": 2})
    assert list(sample_indices(20, 25.0, clips)) == [2, 7, 12, 17]
    with pytest.raises(ValueError, match="mode"):
        sampling_spec({"mode": "dense"})
    with pytest.raises(ValueError, match="do not apply"):
        sampling_spec({"mode": "uniform", "fps": 3})


def test_clips_sampling_and_parallel_workers_match(tiny_manifest, tmp_path):
    manifest, index_dir = tiny_manifest
    manifest = manifest.head(6)
    classes = pd.read_csv(index_dir / "classes.csv")["class_name"].tolist()
    kw = dict(frames_per_video=2, batch_size=4, device="cpu", templates=("a {}.",),
              sampling={"mode": "clips", "clips": 2})
    torch.manual_seed(0)  # random weights: the same ones for each run
    serial = extract(manifest, classes, tmp_path / "a.pt", "svar-tiny-clip", "none", workers=0, **kw)
    torch.manual_seed(0)
    parallel = extract(manifest, classes, tmp_path / "b.pt", "svar-tiny-clip", "none", workers=1, **kw)
    assert serial["frame_features"].shape == (6, 4, 64)
    assert serial["meta"]["sampling"] == {"mode": "clips", "clips": 2, "frames": 2}
    assert serial["meta"]["frames_per_video"] == 4
    assert torch.equal(serial["frame_features"], parallel["frame_features"])
    # resizing on the device gives the features the workers give
    torch.manual_seed(0)
    device_side = extract(manifest, classes, tmp_path / "c.pt", "svar-tiny-clip", "none", workers=0,
                          resize_on="device", **kw)
    assert torch.equal(serial["frame_features"], device_side["frame_features"])


def _fixture_frames():
    names = ["mmaction2_test.avi", "torchcodec_nasa_13013_rotated.mp4", "torchcodec_test_non_zero_start.mp4",
             "torchcodec_testsrc2_odd_height_and_width_vp9.mp4"]
    paths = [FIXTURE_VIDEOS / n for n in names]
    if not all(p.exists() for p in paths):
        pytest.skip(f"fixture videos not found under {FIXTURE_VIDEOS}")
    from svar.video import read_frames

    return [torch.from_numpy(read_frames(str(p), [0, 5, 9])) for p in paths]


def test_preprocessing_matches_open_clip_transform():
    """svar's resize (in the worker, or batched on the device) + normalise vs open_clip's PIL transform."""
    import open_clip
    from PIL import Image

    register_model_configs()
    videos = _fixture_frames()
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("svar-tiny-clip")
    model.eval()
    pre = open_clip.get_model_preprocess_cfg(model)
    size = pre["size"][0] if isinstance(pre["size"], (tuple, list)) else pre["size"]
    with torch.no_grad():
        ref = model.encode_image(torch.stack([preprocess(Image.fromarray(f.numpy())) for v in videos for f in v]))
        in_worker = torch.cat([to_model_input(resize_center_crop(v, size)[None], size, pre, CPU, True)
                               for v in videos])
        # one batch of videos of different sizes, resized on the device, grouped by size
        on_device = to_model_input(videos, size, pre, CPU, False)
        for x in (in_worker, on_device):
            cos = torch.nn.functional.cosine_similarity(model.encode_image(x), ref, dim=-1)
            assert cos.min() >= 0.99, cos


def test_shard_killed_half_way_resumes_and_gathers_to_a_clean_run(tiny_manifest, tmp_path, monkeypatch):
    manifest, index_dir = tiny_manifest
    manifest = manifest.head(12)
    classes = pd.read_csv(index_dir / "classes.csv")["class_name"].tolist()
    encoded = []
    real = openclip_teacher.encode_frames

    def counting(model, x, device):
        encoded.append(x.shape[0] // 2)  # 2 frames a video
        return real(model, x, device)

    monkeypatch.setattr(openclip_teacher, "encode_frames", counting)
    # workers=0: videos decoded in this process; a decoding worker is a spawned Python importing
    # torch, ~1 s for each of the 7 extractions here (workers give the same features: the test above)
    kw = dict(model_name="svar-tiny-clip", pretrained="none", class_names=classes, frames_per_video=2,
              batch_size=2, chunk_size=4, device="cpu", templates=("a {}.",), workers=0)
    n = len(manifest)
    torch.manual_seed(0)  # random weights: the same ones for every shard and run
    # clean run: 2 shards, gathered
    clean = [extract_shard(manifest, i, 2, tmp_path / "clean", **kw) for i in range(2)]
    clean_store = gather(clean, tmp_path / "clean.pt")
    assert sum(encoded) == n
    encoded.clear()

    # shard 0 (6 videos: chunks of 4 and 2) dies after writing its first chunk
    def die(j, ids):
        if j == 0:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        extract_shard(manifest, 0, 2, tmp_path / "run", on_chunk=die, **kw)
    done = sum(encoded)
    assert done == 4 and len(list((tmp_path / "run" / "shard_000_of_002.parts").glob("part_*.pt"))) == 1
    assert not (tmp_path / "run" / "shard_000_of_002.pt").exists()
    # shard 1 stops after one chunk, then both resume
    assert extract_shard(manifest, 1, 2, tmp_path / "run", stop_after_chunks=1, **kw) is None
    encoded.clear()
    files = [extract_shard(manifest, i, 2, tmp_path / "run", **kw) for i in range(2)]
    assert sum(encoded) == n - 4 - 4  # nothing finished was encoded again
    store = gather(files, tmp_path / "features.pt")
    assert store["video_ids"] == list(manifest["video_id"]) == clean_store["video_ids"]
    assert torch.equal(store["frame_features"], clean_store["frame_features"])
    assert torch.equal(store["text_embeddings"], clean_store["text_embeddings"])
    assert load_store(tmp_path / "features.pt")["meta"] == clean_store["meta"]
    # and the gathered store holds what a single extract computes
    whole = extract(manifest, classes, tmp_path / "whole.pt", "svar-tiny-clip", "none", frames_per_video=2,
                    batch_size=2, device="cpu", templates=("a {}.",), workers=0)
    assert torch.allclose(whole["frame_features"].float(), store["frame_features"].float(), atol=1e-2)
    assert whole["meta"] == store["meta"]
    with pytest.raises(ValueError, match=r"1 of 2 shards missing: .*shard_001_of_002\.pt"):
        gather(files[:1])


def test_teacher_weights_receipt_names_the_file_and_its_hash(tmp_path):
    """`svar teacher-weights` (rule teacher_weights): a checkpoint file needs no download; the
    receipt still says which file the teacher will read, and its sha256."""
    import hashlib

    from svar.cli import main

    register_model_configs()
    import open_clip

    ckpt = tmp_path / "teacher.pt"
    torch.save(open_clip.create_model("svar-tiny-clip").state_dict(), ckpt)
    main(["teacher-weights", "--model", "svar-tiny-clip", "--pretrained", str(ckpt), "--out",
          str(tmp_path / "receipt.json")])
    receipt = json.loads((tmp_path / "receipt.json").read_text())
    assert receipt["path"] == str(ckpt) and receipt["bytes"] == ckpt.stat().st_size
    assert receipt["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()


def test_cli_shards_and_gather_equal_one_store(tiny_manifest, tmp_path, capsys):
    """`svar teacher --shard i --shards 2` twice, then `svar teacher-gather`: the store that
    `svar teacher --out` writes in one job."""
    from svar.cli import main

    manifest, index_dir = tiny_manifest
    # --workers 0: decoded in this process, not by a spawned Python importing torch for each command
    common = ["--manifest", str(index_dir / "manifest.csv"), "--classes", str(index_dir / "classes.csv"),
              "--model", "svar-tiny-clip", "--pretrained", "none", "--frames", "2", "--batch-size", "4",
              "--device", "cpu", "--templates", "a {}.", "--offline", "--workers", "0"]
    for i in range(2):
        main(["teacher", *common, "--shard", str(i), "--shards", "2", "--out-dir", str(tmp_path / "shards")])
    shards = sorted(str(p) for p in (tmp_path / "shards").glob("shard_*_of_002.pt"))
    assert len(shards) == 2
    main(["teacher-gather", *shards, "--out", str(tmp_path / "gathered.pt")])
    main(["teacher", *common, "--out", str(tmp_path / "whole.pt")])
    gathered, whole = load_store(tmp_path / "gathered.pt"), load_store(tmp_path / "whole.pt")
    assert gathered["video_ids"] == whole["video_ids"] == list(manifest["video_id"])
    assert torch.allclose(gathered["frame_features"].float(), whole["frame_features"].float(), atol=1e-2)
    assert gathered["meta"] == whole["meta"] and gathered["meta"]["sampling"] == {"mode": "uniform", "frames": 2}
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["teacher", *common, "--shard", "0"])
    assert stop.value.code == 2 and "give either --out" in capsys.readouterr().err


def test_bench_teacher_prints_three_rates_and_the_ratio_last(tiny_manifest, tmp_path, monkeypatch, capsys):
    """`svar bench teacher` on the default config, pointed at a small results tree."""
    import shutil

    import yaml

    from svar.bench_teacher import main_bench_teacher

    manifest, index_dir = tiny_manifest
    (tmp_path / "results" / "default").mkdir(parents=True)  # the default config's name
    shutil.copy(index_dir / "manifest.csv", tmp_path / "results" / "default" / "manifest.csv")
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump({"teacher": {"workers": 1}}))
    monkeypatch.chdir(tmp_path)
    r = main_bench_teacher(["overlay.yaml"], rounds=2, batch_size=8)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"ratio {r['ratio']:.3f}" and r["ratio"] > 0
    assert "not built yet: random weights" in lines[0] and "1 decoding worker(s)" in lines[0]
    assert len(r["rates"]["decode"]) == len(r["rates"]["encode"]) == len(r["rates"]["pipeline"]) == 2
    assert r["ratio"] == pytest.approx(sorted(r["ratios"])[0] / 2 + sorted(r["ratios"])[1] / 2)


def test_more_shards_than_videos_gather_like_one_store(tiny_manifest, tmp_path):
    """teacher.shards larger than the number of videos: the extra shards hold no video and the
    gather is the same store."""
    manifest, index_dir = tiny_manifest
    manifest = manifest.head(3)
    classes = pd.read_csv(index_dir / "classes.csv")["class_name"].tolist()
    kw = dict(class_names=classes, frames_per_video=2, batch_size=2, device="cpu", templates=("a {}.",), workers=0)
    torch.manual_seed(0)
    files = [extract_shard(manifest, i, 5, tmp_path / "shards", "svar-tiny-clip", "none", **kw) for i in range(5)]
    assert [len(torch.load(f, weights_only=True)["video_ids"]) for f in files] == [1, 1, 1, 0, 0]
    store = gather(files, tmp_path / "features.pt")
    whole = extract(manifest, classes, tmp_path / "whole.pt", "svar-tiny-clip", "none", frames_per_video=2,
                    batch_size=2, device="cpu", templates=("a {}.",), workers=0)
    assert store["video_ids"] == whole["video_ids"] and store["frame_features"].shape == whole["frame_features"].shape
    assert torch.allclose(store["frame_features"].float(), whole["frame_features"].float(), atol=1e-2)
