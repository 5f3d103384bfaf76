"""svar plan (svar/plan.py): a stage's estimate is its work × the measured rate, a rate measured
at another size is scaled and says so, a missing rate says what to run, and the report sets the
estimates beside the benchmark files' actual times. (Its job counts against the workflow's dry
run: test_workflow.py.)"""

import pandas as pd
import pytest

from svar.config import load_workflow_config
from svar.costs import cost_table
from svar.plan import RATE_COLUMNS, dataset_shape, plan, plan_markdown, read_rates

from conftest import ROOT


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
    assert "no rate for tiny3d" in table.loc["train", "rate_source"] and "svar bench scale" in table.loc["train",
                                                                                                          "rate_source"]
    text = plan_markdown(plan(config, rates=rates(("index", "decode", "128x128", "cpu", "frame", 1.0, 0.0, 300, "hand"))))
    assert "scaled ×0.25 to 64x64" in text  # another size: scaled by its pixels, and said
    assert "stages without a rate not counted" in text


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
