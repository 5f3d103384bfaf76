"""svar bench scale's parts (svar/bench_scale.py): 4× the videos is 4× both parts, a stage's
time and memory are measured from its own process, and the rates it writes are what svar plan
reads back. (The bench itself runs minutes: docs/measurements.md quotes it.)"""

import sys

import pytest

from svar.bench_scale import rate_rows, scaled_spec, timed, units, write_rates
from svar.config import load_workflow_config
from svar.plan import lookup, read_rates

from conftest import ROOT

SCALE = ROOT / "workflow" / "config" / "scale.yaml"


@pytest.mark.parametrize("videos", [200, 400, 1600])
def test_four_times_the_videos_is_four_times_each_part(videos):
    config = load_workflow_config(SCALE)
    small, large = scaled_spec(config, videos), scaled_spec(config, 4 * videos)
    for spec in (small, large):
        assert spec["clips_per_group"] == 1 and spec["test_groups"] * 2 == spec["groups"]
        assert spec["classes"] == 101 and (spec["width"], spec["height"]) == (320, 240)
    assert large["groups"] == 4 * small["groups"] and large["test_groups"] == 4 * small["test_groups"]
    assert abs(small["groups"] * 101 - videos) <= 101


def test_a_stage_is_timed_in_its_own_process(tmp_path):
    # a child that holds ~200 MB of its own: the peak RSS and the anonymous peak both see it
    result = timed([sys.executable, "-c", "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]);"
                                          " time.sleep(0.3)"], tmp_path / "log")
    assert result["wall_s"] >= 0.3 and result["peak_rss_mb"] > 200 and result["peak_anon_mb"] > 150
    with pytest.raises(RuntimeError, match="exit 3"):
        timed([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "log")


def test_the_rates_written_are_the_rates_the_plan_reads(tmp_path):
    """Two sizes' times fit a job's start and a unit's cost (t = start + units × cost); the plan
    reads them back; a stage whose work is the same at both sizes (training) gets no start."""
    config = load_workflow_config(SCALE)
    shapes = {n: {"videos": n, "train": n // 2, "test": n // 2, "frames": n * 175, "size": "320x240",
                  "method": "supervised"} for n in (202, 808)}
    work = {n: units(config, shapes[n]) for n in shapes}
    start, cost = 5.0, 0.002  # seconds a job, seconds a unit at 2 threads
    results = {n: {"_shape": shapes[n], **{s: {"wall_s": start + cost * work[n][s], "peak_rss_mb": 900.0}
                                           for s in ("index", "clip_cache_train", "clip_cache_test", "teacher",
                                                     "train", "evaluate")}} for n in shapes}
    rates = tmp_path / "rates.csv"
    write_rates(rates, rate_rows(config, results[202], results[808], 2, "test"))
    write_rates(rates, rate_rows(config, results[202], results[808], 2, "test again"))  # same keys: replaced
    table = read_rates(rates)
    assert len(table) == 5 and (table["measured_by"].str.startswith("test again")).all()
    unit_s, job_s, _, source = lookup(table, "evaluate", "r3d_18", "16x112", "cpu")
    assert unit_s == pytest.approx(cost * 2) and job_s == pytest.approx(start) and "test again" in source
    unit_s, job_s, _, _ = lookup(table, "clip_cache_shard", "decode+resize", "320x240->128x171", "cpu")
    # two jobs (a part each) decode the videos' frames: one start each
    assert unit_s == pytest.approx(cost * 2 * 2) and job_s == pytest.approx(start)
    unit_s, job_s, _, _ = lookup(table, "train", "r3d_18", "16x112", "cpu")
    assert job_s == 0 and unit_s == pytest.approx((start + cost * work[808]["train"]) * 2 / work[808]["train"])


def test_a_rate_measured_on_a_gpu_is_labelled_with_its_device(monkeypatch):
    """The teacher, training and evaluation run on their config's device (auto: cuda where there is
    one): their rows say so, in seconds a unit on the device; decoding stays core-seconds on cpu."""
    import torch

    import svar.bench_scale as bench

    config = load_workflow_config(SCALE)
    shapes = {n: {"videos": n, "train": n // 2, "test": n // 2, "frames": n * 175, "size": "320x240",
                  "method": "supervised"} for n in (202, 808)}
    results = {n: {"_shape": shapes[n], **{s: {"wall_s": 5.0 + 0.002 * units(config, shapes[n])[s], "peak_rss_mb": 9.0}
                                           for s in ("index", "clip_cache_train", "clip_cache_test", "teacher",
                                                     "train", "evaluate")}} for n in shapes}
    monkeypatch.setattr(bench, "resolve_device", lambda name, key="device": torch.device("cuda"))
    rows = {r["stage"]: r for r in rate_rows(config, results[202], results[808], 2, "test")}
    assert {s: r["device"] for s, r in rows.items()} == {"index": "cpu", "clip_cache_shard": "cpu",
                                                         "teacher_shard": "cuda", "train": "cuda", "evaluate": "cuda"}
    assert rows["evaluate"]["seconds_per_unit"] == pytest.approx(0.002)  # not ×2 threads: one device
    assert rows["index"]["seconds_per_unit"] == pytest.approx(0.002 * 2)
