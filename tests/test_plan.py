"""svar plan (svar/plan.py): a stage's estimate is its work × the measured rate, a rate measured
at another size is scaled and says so, a missing rate says what to run, and the report sets the
estimates beside the benchmark files' actual times. (Its job counts against the workflow's dry
run: test_workflow.py.)"""

import copy
import re

import pandas as pd
import pytest

from svar.config import load_workflow_config
from svar.costs import cost_table
from svar.datasets import dataset_shape
from svar.plan import RATE_COLUMNS, plan, plan_markdown, read_rates

from conftest import ROOT

UCF101 = ROOT / "workflow" / "config" / "ucf101.yaml"


def rates(*rows):
    return pd.DataFrame([dict(zip(RATE_COLUMNS, row)) for row in rows], columns=RATE_COLUMNS)


def test_an_estimate_is_the_work_times_the_rate_and_a_missing_rate_is_named():
    config = load_workflow_config()
    shape = dataset_shape(config)
    s = config["dataset"]["synthetic"]
    assert shape.videos == s["classes"] * s["groups"] * s["clips_per_group"]
    assert shape.test_videos == s["classes"] * s["test_groups"] * s["clips_per_group"]
    table = plan(config, rates=rates(("index", "decode", f"{s['size']}x{s['size']}", "cpu", "frame", 0.001, 4.0, 300,
                                      "hand"),
                                     ("index", "decode", "128x128", "cpu", "frame", 1.0, 0.0, 300, "hand"))).set_index("stage")
    threads = config["resources"]["index"]["threads"]
    work = shape.videos * shape.frames
    assert table.loc["index", "work"] == work
    # the exact size's rate: the job's start, then its work shared by its threads
    assert table.loc["index", "est_wall_s_total"] == pytest.approx(4.0 + work * 0.001 / threads)
    assert table.loc["index", "est_device_h"] == pytest.approx((4.0 + work * 0.001 / threads) * threads / 3600)
    assert pd.isna(table.loc["train", "est_wall_s_total"])
    assert "no rate for stage train, model tiny3d" in table.loc["train", "rate_source"] and "svar bench scale" in table.loc["train",
                                                                                                          "rate_source"]
    text = plan_markdown(plan(config, rates=rates(("index", "decode", "128x128", "cpu", "frame", 1.0, 0.0, 300, "hand"))))
    assert "scaled ×0.25 to 64x64" in text  # another size: scaled by its pixels, and said
    assert "CPU core-h without teacher_shard, clip_cache_shard, train, evaluate (no rate: unknown)" in text


def test_the_clip_caches_size_is_every_kept_frame():
    config = load_workflow_config()
    table = plan(config, rates=rates()).set_index("stage")
    shape = dataset_shape(config)
    s, e = config["student"], config["evaluate"]
    h, w = s["cache_size"]
    # segments: cache_frames (∪ the centre view) a training video; e.clips × frames a test video at most
    low = (shape.train_videos * s["cache_frames"] + shape.test_videos * s["frames"]) * h * w * 3
    high = (shape.train_videos * (s["cache_frames"] + s["frames"]) + shape.test_videos * s["frames"] * e["clips"]) * h * w * 3
    assert low / 1e6 <= table.loc["clip_cache_shard", "est_disk_mb"] <= high / 1e6


def test_the_ucf101_plan_uses_the_published_counts():
    config = load_workflow_config(ROOT / "workflow" / "config" / "ucf101.yaml")
    table = plan(config, device="cuda", rates=read_rates())
    assert "UCF101's published counts" in table.attrs["dataset"]
    by = table.set_index("stage")
    assert by.loc["train", "jobs"] == len(config["methods"]) * 5 * len(config["seeds"])
    assert by.loc["train", "device"] == "cuda" and by.loc["index", "device"] == "cpu"
    # every 4th frame of 9,537 training videos and ~10 clips × 16 frames of 3,783 test videos at 128×171
    assert 20_000 < by.loc["clip_cache_shard", "est_disk_mb"] < 80_000


def test_the_cost_table_puts_the_estimate_beside_the_actual():
    jobs = pd.DataFrame([{"stage": "train", "job": "train/a", "wall_s": 10.0, "cpu_s": 9.0, "peak_rss_mb": 100.0},
                         {"stage": "train", "job": "train/b", "wall_s": 12.0, "cpu_s": 11.0, "peak_rss_mb": 120.0},
                         {"stage": "index", "job": "index", "wall_s": 3.0, "cpu_s": 2.0, "peak_rss_mb": 50.0}])
    estimate = pd.DataFrame([{"stage": "train", "est_wall_s_total": 20.0}, {"stage": "evaluate", "est_wall_s_total": 5.0}])
    table = cost_table(jobs, estimate).set_index("stage")
    assert table.loc["train", "est_wall_s_total"] == 20.0 and table.loc["train", "wall_s_total"] == 22.0
    assert pd.isna(table.loc["index", "est_wall_s_total"])
    assert table.loc["total", "est_wall_s_total"] == 20.0  # the stages that ran
    assert cost_table(jobs)["est_wall_s_total"].isna().all()


def test_a_stage_without_a_rate_is_unknown_never_0():
    config = load_workflow_config(ROOT / "workflow" / "config" / "tiny.yaml")
    table = plan(config, device="cuda", rates=rates(("index", "decode", "32x32", "cpu", "frame", 0.001, 1.0, 300, "hand")))
    text = plan_markdown(table)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    for stage in ("teacher_shard", "train", "evaluate"):
        cells = [c.strip() for c in rows[stage].strip("|").split("|")]
        # est. wall, longest job, device-hours: said unknown, not 0 and not blank
        assert cells[3] == cells[4] == "unknown" and cells[5] == "unknown GPU-h", rows[stage]
        source = table.set_index("stage").loc[stage, "rate_source"]
        assert f"no rate for stage {stage}, model " in source and ", device cuda" in source
        assert "`svar bench scale --configfile workflow/config/scale.yaml" in source
    train = table.set_index("stage").loc["train", "rate_source"]
    assert "scale.yaml OVERLAY --rates svar/data/rates.csv` (OVERLAY: a YAML file holding `student: {arch: tiny3d, " \
           "frames: 4, size: 16}`), on a machine with the cuda device" in train
    assert "--model svar-tiny-clip" in table.set_index("stage").loc["teacher_shard", "rate_source"]
    assert not re.search(r"\| 0(\.0+)? (s|GPU-h)", text)
    total = text.splitlines()[-1]
    assert total.startswith("total: unknown GPU-h (no rate for teacher_shard, train, evaluate), ")
    assert "CPU core-h without clip_cache_shard (no rate: unknown)" in total


def test_the_ucf101_plan_on_cuda_has_every_gpu_stage_from_a_named_rate():
    config = load_workflow_config(UCF101)
    table = plan(config, device="cuda", rates=read_rates())
    by = table.set_index("stage")
    for stage in ("teacher_shard", "train", "evaluate"):
        assert by.loc[stage, "device_h_kind"] == "GPU-h" and by.loc[stage, "est_device_h"] > 0, stage
        assert "H200 anchor bench 2026-11-26 (not svar's pipeline)" in by.loc[stage, "rate_source"]
    # the teacher job: 7 decoding workers cannot keep up with the encoder
    assert by.loc["teacher_shard", "note"].startswith("8 frames a video; decode-bound: 7 decoding workers")
    assert by.loc["evaluate", "rate_source"].startswith("derived, not measured")
    # 76.8 M training clips at 891 clips/s
    assert by.loc["train", "est_device_h"] == pytest.approx(76_800_000 / 891 / 3600)
    total = plan_markdown(table).splitlines()[-1]
    gpu_h = float(re.match(r"total: ([\d.]+) GPU-h, [\d.]+ CPU core-h$", total).group(1))
    assert gpu_h == pytest.approx(by.loc[["teacher_shard", "train", "evaluate"], "est_device_h"].sum(), abs=0.01)


def test_the_teacher_job_goes_at_its_slower_half():
    config = load_workflow_config(UCF101)
    base = [("teacher_shard", config["teacher"]["model"], "-", "cuda", "frame", 0.001, 2.0, None, "encoder"),
            ("teacher_shard", "decode", "8x320x240", "cuda", "video", 0.08, None, None, "decoder")]
    frames = config["teacher"]["sampling"]["frames"]
    assert frames == 8 and config["teacher"]["workers"] == 7

    def teacher(workers):
        c = copy.deepcopy(config)
        c["teacher"]["workers"] = workers
        return plan(c, device="cuda", rates=rates(*base)).set_index("stage").loc["teacher_shard"]

    # 7 workers decode 7 / 0.08 = 87.5 videos/s, the encoder 125 videos/s: decoding sets the pace
    assert teacher(7)["seconds_per_unit"] == pytest.approx(0.08 / 7 / frames) and "decode-bound" in teacher(7)["note"]
    assert teacher(20)["seconds_per_unit"] == pytest.approx(0.001) and "encoder-bound" in teacher(20)["note"]
    # no workers: the job's own process decodes, then encodes
    assert teacher(0)["seconds_per_unit"] == pytest.approx(0.001 + 0.08 / frames) and "serial" in teacher(0)["note"]
    # without a decoding rate for the device, the encoder's rate is the job's
    alone = plan(config, device="cuda", rates=rates(base[0])).set_index("stage").loc["teacher_shard"]
    assert alone["seconds_per_unit"] == 0.001 and alone["est_wall_s_total"] == pytest.approx(2.0 + alone["work"] * 0.001)


def test_a_train_jobs_gpu_memory_grows_with_its_clips_and_warns():
    config = load_workflow_config(UCF101)

    def peak_mb(**train):
        c = copy.deepcopy(config)
        c["train"].update(train)
        return plan(c, device="cuda", rates=read_rates()).set_index("stage").loc["train", "est_peak_gpu_mb"]

    base = peak_mb()
    assert peak_mb(batch_size=16) > base and peak_mb(unlabeled_ratio=8) > base and peak_mb(unlabeled_ratio=1) < base
    assert "est_peak_gpu_mb" not in plan(config, device="cpu", rates=read_rates())  # on the CPU: no GPU
    text = plan_markdown(plan(config, device="cuda", rates=read_rates()))
    assert "est. peak GPU memory of a train job: " in text and "fixmatch: 120 clips of 16×112² a step" in text
    assert "warning" not in text  # r3d_18 at 120 clips: within 16 GB
    c = copy.deepcopy(config)
    c["student"]["arch"] = "r2plus1d_18"  # about 3× r3d_18's activations a clip
    text = plan_markdown(plan(c, device="cuda", rates=read_rates()))
    warning = next(line for line in text.splitlines() if line.startswith("warning: a train job needs"))
    assert "does not fit a 16, 24 GB GPU (it fits 40 GB)" in warning
    for key in ("train.batch_size", "train.unlabeled_ratio", "student.frames", "student.size"):
        assert key in warning


@pytest.mark.parametrize("arch", ["tiny3d", "r3d_18", pytest.param("r2plus1d_18", marks=pytest.mark.slow),
                                  "vit_b16_divided"])
def test_the_memory_estimate_is_what_a_real_step_saves(arch):
    """The estimate's saved bytes (the meta device, no compute) against a real forward + backward
    on the CPU under bf16 autocast, as the trainer runs on CUDA, at a tiny size: the bytes of every
    storage autograd saved, the bf16 copies of the weights included. Tolerance 2% (they agree
    exactly with torch 2.14.1)."""
    import torch

    from svar.students import STUDENTS, channels_last_3d
    from svar.train_memory import ACTIVATION_DTYPE_BYTES, saved_bytes

    frames, size, clips = 4, 16, 3
    torch.manual_seed(0)
    net = channels_last_3d(STUDENTS[arch].make())
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        saved.setdefault(storage.data_ptr(), (storage.nbytes(), t))
        return t

    x = torch.randn(clips, 3, frames, size, size).contiguous(memory_format=torch.channels_last_3d)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net.forward_features(x)
    out.float().mean().backward()
    measured = sum(n for n, _ in saved.values())
    per_clip, fixed, params = saved_bytes(arch, frames, size)
    assert params == sum(p.numel() for p in net.parameters())
    assert fixed + per_clip * clips + ACTIVATION_DTYPE_BYTES * params == pytest.approx(measured, rel=0.02)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "workflow" / "config").glob("*.yaml")))
def test_every_shipped_config_plans(name, device):
    config = load_workflow_config(ROOT / "workflow" / "config" / name)
    if config["dataset"]["root"]:  # your own videos: no shape before `svar index`, and it says what to run
        with pytest.raises(ValueError, match=r"dataset.root: .* run `snakemake results/<name>/manifest.csv` first"):
            plan(config, device=device)
        return
    text = plan_markdown(plan(config, device=device))
    assert text.splitlines()[-1].startswith("total: ")


def test_svar_plan_refuses_what_the_workflow_refuses(tmp_path):
    """svar plan runs the workflow's config check: two teachers of one name, or fractions that
    are one in file names, are named, not planned."""
    import yaml

    from svar.config import ConfigError
    from svar.plan import main_plan

    cases = {"teachers": {"teachers": [{"name": "a", "model": "ViT-B-32", "pretrained": "none"},
                                       {"name": "a", "model": "ViT-B-16", "pretrained": "none"}]},
             "fractions": {"fractions": [0.25, 0.2500001]}}
    for name, overlay in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(overlay))
        with pytest.raises(ConfigError, match={"teachers": r"teachers\[1\]: its folder .* is another teacher's",
                                               "fractions": r"fractions: \[0.25, 0.2500001\] are one fraction"}[name]):
            main_plan([path])
