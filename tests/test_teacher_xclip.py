"""Teacher backends (svar.teacher.backends): X-CLIP beside open_clip, one feature store.

X-CLIP runs here with random weights of svar's own small config (svar-tiny-xclip: 4 frames of
32 px): the shapes, the faithfulness of its zero-shot logits to XCLIPModel's own, the store's
readers, sharded extraction and offline loading from a snapshot folder written in the test.
"""

import json
import logging
import socket

import pandas as pd
import pytest
import torch

from svar import config as cfg
from svar import config_checks
from svar.splits import make_split
from svar.teacher.backends import TEACHER_BACKENDS, load_teacher, split_model, weights_receipt
from svar.teacher.features import extract, extract_shard, gather, make_loader
from svar.teacher.preprocess import to_model_input
from svar.teacher.prompts import class_prompts
from svar.teacher.sampling import sampling_spec
from svar.teacher.store import frame_features, load_store, video_features, zeroshot_logits
from svar.trainer import train

TINY = "xclip:svar-tiny-xclip"
FRAMES = 4  # svar-tiny-xclip's num_frames
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def classes(tiny_manifest):
    return pd.read_csv(tiny_manifest[1] / "classes.csv")["class_name"].tolist()


@pytest.fixture(scope="module")
def xclip_store(tiny_manifest, classes, tmp_path_factory):
    manifest, _ = tiny_manifest
    out = tmp_path_factory.mktemp("xclip") / "features.pt"
    extract(manifest, classes, out, TINY, "none", frames_per_video=FRAMES, batch_size=4, device="cpu",
            templates=("a {}.",), workers=0)
    return load_store(out)


def _model_input(manifest, spec, teacher):
    """The frames extraction feeds the model, for manifest's videos: [N, T, 3, S, S]."""
    loader, resized = make_loader(manifest, spec, teacher.preprocess, CPU, 0, len(manifest))
    (_, frames), = list(loader)
    x = to_model_input(frames, teacher.preprocess["size"], teacher.preprocess, CPU, resized)
    return x.view(len(manifest), spec["frames"], *x.shape[1:])


def test_features_and_zeroshot_logits_are_xclips_own(tiny_manifest, classes, xclip_store, caplog):
    """k = 1 row a video: X-CLIP's video embedding (get_video_features); zero-shot logits are
    XCLIPModel's logits_per_video on the same frames and prompts."""
    manifest, _ = tiny_manifest
    store = xclip_store
    n, c, dim = len(manifest), len(classes), 32
    assert store["frame_features"].shape == (n, 1, dim) and store["frame_features"].dtype == torch.float16
    assert store["zeroshot_cosines"].shape == (n, c)
    assert store["text_embeddings"].shape == (c, dim)
    assert torch.allclose(store["text_embeddings"].norm(dim=1), torch.ones(c), atol=1e-5)
    assert store["meta"]["backend"] == "xclip" and store["meta"]["model"] == TINY
    assert store["meta"]["random_weights"] is True

    teacher = load_teacher(TINY, "none", CPU)
    spec = sampling_spec(None, FRAMES)
    ids = list(manifest["video_id"][:3])
    x = _model_input(manifest.head(3), spec, teacher)
    tokens = teacher.tokenizer([prompt for name in classes for prompt in class_prompts(name, ["a {}."])])
    with torch.no_grad():
        own = teacher.model(input_ids=tokens, pixel_values=x)
    assert torch.allclose(video_features(store, ids), own.video_embeds, atol=2e-3)  # float16 storage
    logits = zeroshot_logits(store, video_features(store, ids), ids)
    assert logits.shape == (3, c)
    assert torch.allclose(logits, own.logits_per_video, atol=1e-4)
    # the logits depend on the video, not on its feature alone: features without ids are refused
    with pytest.raises(ValueError, match="pass video_ids"):
        zeroshot_logits(store, video_features(store, ids))


def test_clips_mode_stores_one_row_a_clip_and_frames_must_be_the_models(tiny_manifest, classes, tmp_path):
    manifest, _ = tiny_manifest
    store = extract(manifest.head(2), classes, tmp_path / "c.pt", TINY, "none", device="cpu", workers=0,
                    sampling={"mode": "clips", "clips": 2, "frames": FRAMES}, templates=("a {}.", "a video of {}."))
    assert store["frame_features"].shape == (2, 2, 32) and store["zeroshot_cosines"].shape == (2, len(classes))
    assert frame_features(store, store["video_ids"]).shape == (2, 2, 32)
    with pytest.raises(ValueError, match=r"teacher.sampling.frames: 8, but this X-CLIP integrates 4 frames"):
        extract(manifest.head(1), classes, tmp_path / "f.pt", TINY, "none", frames_per_video=8, device="cpu",
                workers=0)


def test_random_weights_are_warned_loudly(tiny_manifest, classes, tmp_path, caplog):
    manifest, _ = tiny_manifest
    with caplog.at_level(logging.WARNING):
        extract(manifest.head(1), classes, tmp_path / "f.pt", TINY, "none", frames_per_video=FRAMES, device="cpu",
                workers=0)
    assert "TEACHER WEIGHTS ARE RANDOM" in caplog.text


@pytest.mark.parametrize("method", ["clip_zeroshot", "clip_linear_probe", "teacher_pl", "distill_kd", "temporal_probe"])
def test_the_store_is_read_by_training_and_evaluation_unchanged(tiny_manifest, xclip_store, tmp_path, method):
    from svar.evaluate import evaluate
    from svar.methods.teacher_heads import head_logits

    from test_training import with_options

    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    options = with_options(train={"steps": 2}, temporal_probe={"heads": 2, "steps": 2})
    ckpt = train(manifest, split, xclip_store, method, options, tmp_path / "m.pt", 0,
                 {"dataset": "synthetic", "fraction": 0.5})
    metrics = evaluate(tmp_path / "m.pt", manifest, split, xclip_store, tmp_path / "metrics.json")
    assert 0.0 <= metrics["top1"] <= 1.0
    if method == "clip_zeroshot":  # X-CLIP's own zero-shot prediction, video by video
        ids = list(split[split["role"] == "test"]["video_id"])
        assert torch.equal(head_logits(ckpt, xclip_store, ids), zeroshot_logits(xclip_store, None, ids))


def test_sharded_extraction_gathers_to_one_store(tiny_manifest, classes, xclip_store, tmp_path, monkeypatch):
    from svar.teacher.xclip_teacher import LoadedXClip

    manifest, _ = tiny_manifest
    encoded = []
    real = LoadedXClip.encode_videos

    def counting(self, x, n_videos, spec, text):
        encoded.append(n_videos)
        return real(self, x, n_videos, spec, text)

    monkeypatch.setattr(LoadedXClip, "encode_videos", counting)
    kw = dict(model_name=TINY, pretrained="none", class_names=classes, frames_per_video=FRAMES, batch_size=2,
              chunk_size=2, device="cpu", templates=("a {}.",), workers=0)
    # shard 0 dies after its first chunk, then resumes: the finished chunk is not encoded again
    def die(j, ids):
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        extract_shard(manifest, 0, 3, tmp_path / "s", on_chunk=die, **kw)
    parts = sorted((tmp_path / "s" / "shard_000_of_003.parts").glob("part_*.pt"))
    assert len(parts) == 1 and "zeroshot_cosines" in torch.load(parts[0], weights_only=True)
    assert sum(encoded) == 2
    files = [extract_shard(manifest, i, 3, tmp_path / "s", **kw) for i in range(3)]
    assert sum(encoded) == 2 + len(manifest) - 2  # the finished chunk was not encoded again
    store = gather(files, tmp_path / "features.pt")
    assert store["video_ids"] == xclip_store["video_ids"]
    for key in ("frame_features", "zeroshot_cosines"):
        # batches cut from each shard's videos: the same numbers up to float rounding
        assert torch.allclose(store[key].float(), xclip_store[key].float(), atol=2e-3), key
    assert torch.equal(store["text_embeddings"], xclip_store["text_embeddings"])
    assert store["meta"] == xclip_store["meta"]


def _clip_tokenizer_files(folder):
    """A CLIP tokenizer's files (vocab.json, merges.txt) from open_clip's own BPE, which is CLIP's:
    what a real snapshot holds, made without a download."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    bpe = SimpleTokenizer()
    # CLIP's names of the two special tokens (open_clip calls them <start_of_text>, <end_of_text>)
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    (folder / "vocab.json").write_text(json.dumps({names.get(k, k): v for k, v in bpe.encoder.items()}))
    merges = sorted(bpe.bpe_ranks, key=bpe.bpe_ranks.get)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    CLIPTokenizer.from_pretrained(folder, local_files_only=True).save_pretrained(folder)


@pytest.fixture
def snapshot(tmp_path):
    """cache_dir/org/tiny-xclip: svar-tiny-xclip's random weights saved as a Hugging Face snapshot."""
    random_teacher = load_teacher(TINY, "none", CPU)
    folder = tmp_path / "cache" / "org" / "tiny-xclip"
    random_teacher.model.save_pretrained(folder)
    _clip_tokenizer_files(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5],
                                                                 "image_std": [0.25, 0.25, 0.25], "resample": 3}))
    return random_teacher, tmp_path / "cache", folder


def test_weights_load_offline_from_a_snapshot_folder(snapshot, monkeypatch, tmp_path, classes):
    random_teacher, cache, folder = snapshot

    def refuse(*args, **kwargs):
        raise AssertionError("svar touched the network")

    monkeypatch.setattr(socket, "socket", refuse)
    for pretrained in ("hub", str(folder)):  # the fetched snapshot in cache_dir, or a save_pretrained folder
        teacher = load_teacher("xclip:org/tiny-xclip", pretrained, CPU, cache_dir=str(cache), offline=True)
        for (name, a), b in zip(teacher.model.state_dict().items(), random_teacher.model.state_dict().values()):
            assert torch.equal(a, b), name
        assert teacher.preprocess == {"size": 32, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
                                      "interpolation": "bicubic"}  # the snapshot's resample 3: PIL's bicubic
        # the snapshot's CLIP tokenizer and open_clip's give the same class embeddings
        assert hasattr(teacher.tokenizer, "pad_token")
        assert torch.allclose(teacher.encode_text(classes, ["a {}."]).embeddings,
                              random_teacher.encode_text(classes, ["a {}."]).embeddings, atol=1e-5)
    # the receipt of rule teacher_weights: the snapshot's files, each with its sha256; nothing downloaded
    receipt = weights_receipt("xclip:org/tiny-xclip", "hub", str(cache), tmp_path / "receipt.json")
    assert receipt["path"] == str(folder)
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= set(receipt["files"])
    assert len(receipt["files"]["model.safetensors"]["sha256"]) == 64


def test_frames_are_resampled_as_the_models_processor_says(tiny_manifest, snapshot, classes, tmp_path):
    """X-CLIP's processor resizes bilinearly (its default without a preprocessor_config.json),
    open_clip's bicubically: extraction's frames are resized so, the store says which, and a
    resample svar does not resize with is named with its file."""
    from svar.image import resize_center_crop
    from svar.teacher.preprocess import image_size, interpolation
    from svar.teacher.sampling import sample_indices
    from svar.video import read_frames

    manifest, _ = tiny_manifest
    teacher = load_teacher(TINY, "none", CPU)
    assert interpolation(teacher.preprocess) == "bilinear"
    spec = sampling_spec(None, FRAMES)
    pre = {**teacher.preprocess, "size": 24}  # smaller than the toy videos: a real resize, where resamplings differ
    loader, resized = make_loader(manifest.head(1), spec, pre, CPU, 0, 1)
    (_, frames), = list(loader)
    assert resized
    row = manifest.iloc[0]
    decoded = torch.from_numpy(read_frames(row["path"], sample_indices(int(row["frames"]), float(row["fps"]), spec)))
    size = image_size(pre)
    assert torch.equal(frames[0], resize_center_crop(decoded, size, "bilinear"))
    assert not torch.equal(frames[0], resize_center_crop(decoded, size, "bicubic"))
    out = tmp_path / "features.pt"
    extract(manifest.head(2), classes, out, TINY, "none", frames_per_video=FRAMES, batch_size=2, device="cpu",
            templates=("a {}.",), workers=0)
    assert load_store(out)["meta"]["resize"] == "bilinear"

    _, cache, folder = snapshot
    (folder / "preprocessor_config.json").write_text(json.dumps({"resample": 0}))
    with pytest.raises(ValueError, match=r"preprocessor_config.json: resample 0 is not one svar resizes with"):
        load_teacher("xclip:org/tiny-xclip", "hub", CPU, cache_dir=str(cache), offline=True)


def test_a_missing_snapshot_offline_names_the_file_and_the_rule(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config.json does not exist \(teacher.cache_dir holds it\).*"
                                                r"rule teacher_weights"):
        load_teacher("xclip:microsoft/xclip-base-patch32", "hub", CPU, cache_dir=str(tmp_path), offline=True)


CONFIGS = cfg.WORKFLOW_CONFIG.parent


@pytest.mark.parametrize("backend", TEACHER_BACKENDS.names())
def test_every_backend_passes_the_schema_and_the_teacher_checks(backend):
    """Each registered backend, by teacher.backend and by its model name's prefix (in `teachers`):
    its own small model with random weights is a valid teacher."""
    member = TEACHER_BACKENDS[backend]
    frames = member.frames(member.small_model, None) or cfg.default("teacher.sampling.frames")
    overlay = {"teacher": {"backend": backend, "model": member.small_model, "pretrained": "none",
                           "sampling": {"frames": frames}},
               "teachers": [{"backend": backend, "model": member.small_model, "pretrained": "none"}]}
    config = config_checks.check(cfg.merge(cfg.read_yaml(CONFIGS / "config.yaml"), overlay))
    teachers = cfg.grid_teachers(config)
    assert [split_model(t["model"])[0].name for _, t in teachers] == [backend, backend]
    assert cfg.qualified_model(backend, member.small_model) == teachers[0][1]["model"]


def test_a_teacher_check_names_a_wrong_frame_count_and_an_unknown_model():
    base = cfg.read_yaml(CONFIGS / "config.yaml")
    with pytest.raises(cfg.ConfigError, match=r"teacher.sampling.frames: 8, but xclip:svar-tiny-xclip integrates 4"):
        config_checks.check(cfg.merge(base, {"teacher": {"backend": "xclip", "model": "svar-tiny-xclip",
                                                         "pretrained": "none"}}))
    with pytest.raises(cfg.ConfigError, match=r"teacher.pretrained: generated is the generated dataset's own "
                                              r"open_clip"):
        config_checks.check(cfg.merge(base, {"teacher": {"model": "xclip:svar-tiny-xclip",
                                                         "sampling": {"frames": 4}}}))
    with pytest.raises(cfg.ConfigError, match=r"teachers\[0\]: clip_finetune fine-tunes an open_clip image encoder, "
                                              r"but xclip:svar-tiny-xclip is a teacher of backend xclip"):
        config_checks.check(cfg.merge(base, {"methods": ["clip_finetune"], "teacher": {"sampling": {"frames": 4}},
                                             "teachers": [{"model": "xclip:svar-tiny-xclip", "pretrained": "none"}]}))
    with pytest.raises(cfg.ConfigError, match=r"teachers\[0\].model: xclip:nobody with random weights"):
        config_checks.check(cfg.merge(base, {"teachers": [{"model": "xclip:nobody", "pretrained": "none"}]}))


def test_bench_teacher_runs_another_backend(tiny_manifest, tmp_path, monkeypatch, capsys):
    """`svar bench teacher --backend xclip`: the backend's small model, random weights, at its own
    frame count; the last line is the ratio (its value is measured, not asserted: no timed test)."""
    import shutil

    import yaml

    from svar.bench_teacher import main_bench_teacher

    manifest, index_dir = tiny_manifest
    (tmp_path / "results" / "default").mkdir(parents=True)
    shutil.copy(index_dir / "manifest.csv", tmp_path / "results" / "default" / "manifest.csv")
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump({"teacher": {"workers": 0}}))
    monkeypatch.chdir(tmp_path)
    r = main_bench_teacher(["overlay.yaml"], rounds=1, batch_size=8, backend="xclip")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"teacher bench: {TINY} (random weights") and f"'frames': {FRAMES}" in lines[0]
    assert lines[-1] == f"ratio {r['ratio']:.3f}" and r["ratio"] > 0


def test_plan_rates_each_teacher_by_its_own_model_and_says_unknown_without_one():
    """svar plan: an X-CLIP teacher is looked up by its one name (xclip:...); with no measured
    rate its stage is unknown, naming the command that measures it, never a number of another
    model's."""
    import pandas as pd

    from svar.plan import RATE_COLUMNS, plan

    base = cfg.merge(cfg.read_yaml(CONFIGS / "config.yaml"), {"methods": ["clip_zeroshot"], "teacher": {
        "pretrained": "none"}, "teachers": [{"backend": "xclip", "model": "svar-tiny-xclip", "pretrained": "none"}]})
    config = cfg.validate(base)
    measured = ("teacher_shard", "svar-tiny-clip", "-", "cpu", "teacher frame encoded", 0.002, 10.0, 1000, "bench A")
    row = plan(config, rates=pd.DataFrame([measured], columns=RATE_COLUMNS)).set_index("stage").loc["teacher_shard"]
    assert row["model"] == TINY and pd.isna(row["est_wall_s_total"])
    assert row["rate_source"].startswith(f"unknown: no rate for stage teacher_shard, model {TINY}")
    assert f"--model {TINY}" in row["rate_source"]
    both = pd.DataFrame([measured, ("teacher_shard", TINY, "-", "cpu", "teacher frame encoded", 0.004, 20.0, 3000,
                                    "bench B")], columns=RATE_COLUMNS)
    row = plan(config, rates=both).set_index("stage").loc["teacher_shard"]
    assert row["seconds_per_unit"] == pytest.approx(0.003) and row["peak_rss_mb_measured"] == 3000
    assert row["rate_source"] == f"svar-tiny-clip: bench A; {TINY}: bench B"


def test_a_video_teacher_beside_an_image_teacher_takes_its_own_frames():
    """A `teachers` entry's sampling, key by key over `teacher`'s: an image teacher at 2 frames a
    video beside an X-CLIP at its 4 (its own frames a clip); the check names a wrong count by the
    entry's key, and the plan counts each teacher's frames at its own rate."""
    import pandas as pd

    from svar.plan import RATE_COLUMNS, plan

    base = cfg.merge(cfg.read_yaml(CONFIGS / "config.yaml"), {
        "methods": ["clip_zeroshot"], "teacher": {"pretrained": "none", "sampling": {"frames": 2}},
        "teachers": [{"backend": "xclip", "model": TINY, "pretrained": "none", "sampling": {"frames": FRAMES}}]})
    config = config_checks.check(base)
    sections = cfg.teacher_sections(config)
    assert [s["sampling"]["frames"] for s in sections] == [2, FRAMES]
    assert sections[1]["sampling"]["mode"] == sections[0]["sampling"]["mode"] == cfg.default("teacher.sampling.mode")
    wrong = cfg.merge(base, {})
    wrong["teachers"][0]["sampling"] = {"frames": 2}
    with pytest.raises(cfg.ConfigError, match=rf"teachers\[0\].sampling.frames: 2, but {TINY} integrates "
                                              rf"{FRAMES} frames a clip .*set teachers\[0\].sampling.frames: {FRAMES}"):
        config_checks.check(wrong)
    rates = pd.DataFrame([("teacher_shard", "svar-tiny-clip", "-", "cpu", "teacher frame encoded", 0.002, 10.0, 1000,
                           "bench A"),
                          ("teacher_shard", TINY, "-", "cpu", "teacher frame encoded", 0.004, 20.0, 3000,
                           "bench B")], columns=RATE_COLUMNS)
    row = plan(cfg.validate(base), rates=rates).set_index("stage").loc["teacher_shard"]
    # seconds a frame weighted by each teacher's frames: (2 × 0.002 + 4 × 0.004) / 6
    assert row["seconds_per_unit"] == pytest.approx((2 * 0.002 + FRAMES * 0.004) / (2 + FRAMES))
    assert f"{TINY} {FRAMES}" in row["note"]
