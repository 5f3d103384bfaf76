"""Records and receipts: every part and every file svar writes is checked against the size and
checksum written with it (issue 26: a zeroed clip cache shard trusted, a gather of 1 of 2 shards,
a deleted shard not rebuilt, a truncated summary.csv left in place, clip_cache.shards rerunning
every run), and `svar verify` names each file of a results folder that differs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY, job_counts, snakemake, write_config
from test_workflow import STUDENT_METHODS
from svar.receipts import check, record, record_path, verify


def svar(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "svar", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def zero_in_place(path, offset=200, length=64):
    """Overwrite bytes with zeros, the size unchanged (what the red-team did to a shard)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * length)


# --------------------------------------------------------------------------- records


def test_a_record_finds_a_truncated_or_zeroed_file_and_a_missing_one(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b\n" + "1,2\n" * 100)
    record(path)
    assert record_path(path).exists() and check(path) is None
    zero_in_place(path, 10, 5)
    assert "checksum" in check(path) and "same size" in check(path)
    os.truncate(path, 10)
    assert check(path) == f"size 10 bytes, recorded {4 + 400}"
    path.unlink()
    assert check(path) == "missing"
    files, differing = verify(tmp_path)
    assert files == [path] and differing == {path: "missing"}


def test_svar_verify_says_clean_or_names_each_file_that_differs(tmp_path):
    folder = tmp_path / "results" / "x"
    (folder / "runs").mkdir(parents=True)
    for name in ("metrics.csv", "runs/metrics.json"):
        (folder / name).write_text("0.5\n")
        record(folder / name)
    ok = svar("verify", str(folder))
    assert ok.returncode == 0 and ok.stdout.strip() == f"2 files verified ({folder})", ok.stdout + ok.stderr
    (folder / "metrics.csv").write_text("0.9\n")  # same size
    bad = svar("verify", str(folder))
    assert bad.returncode == 1 and f"{folder / 'metrics.csv'}: checksum" in bad.stdout
    assert "runs/metrics.json" not in bad.stdout and "1 of 2 files differ" in bad.stdout
    (tmp_path / "empty").mkdir()
    none = svar("verify", str(tmp_path / "empty"))
    assert none.returncode == 2 and "no file with a record" in none.stderr
    assert svar("verify", str(tmp_path / "nowhere")).returncode == 2


# --------------------------------------------------------------------------- gathers


def fake_teacher_shard(folder, index, of, ids):
    """A teacher shard file as extract_shard writes one (what gather reads of it), recorded."""
    from svar.atomic import torch_save
    from svar.teacher.features import shard_path

    rows = list(range(index, len(ids), of))
    shard = {"rows": rows, "video_ids": [ids[r] for r in rows], "frame_features": torch.zeros(len(rows), 1, 4),
             "manifest_ids": ids, "text_embeddings": torch.zeros(2, 4), "logit_scale": 1.0, "class_names": ["a", "b"],
             "meta": {"model": "m", "shard": {"index": index, "of": of, "assignment": "strided"}}}
    path = shard_path(folder, index, of)
    torch_save(path, shard)
    record(path)
    return path


def test_the_teacher_gather_refuses_a_missing_extra_or_changed_shard_by_name(tmp_path):
    from svar.receipts import read_record
    from svar.teacher.features import gather

    ids = [f"v{i}" for i in range(5)]
    shards = [fake_teacher_shard(tmp_path, i, 2, ids) for i in range(2)]
    with pytest.raises(ValueError, match=r"1 of 2 shards missing: .*shard_001_of_002\.pt"):
        gather(shards[:1], tmp_path / "one.pt")
    with pytest.raises(ValueError, match="shard 0 of 2 given twice"):
        gather([shards[0], shards[0], shards[1]], tmp_path / "twice.pt")
    extra = fake_teacher_shard(tmp_path, 2, 3, ids)
    with pytest.raises(ValueError, match=r"shard_002_of_003\.pt is shard 2 of 3"):
        gather(shards + [extra], tmp_path / "extra.pt")
    gather(shards, tmp_path / "features.pt", record_parts=True)
    parts = read_record(tmp_path / "features.pt")["parts"]
    assert [p["path"] for p in parts] == [str(s) for s in shards]
    assert [p["sha256"] for p in parts] == [read_record(s)["sha256"] for s in shards]
    zero_in_place(shards[1], 300, 16)
    with pytest.raises(ValueError, match=r"shard_001_of_002\.pt: checksum .* rule teacher_shard"):
        gather(shards, tmp_path / "again.pt")
    # the store is checked against its record when a job loads it
    from svar.teacher.store import load_store

    assert load_store(tmp_path / "features.pt")["video_ids"] == ids
    zero_in_place(tmp_path / "features.pt", 100, 8)
    with pytest.raises(ValueError, match=r"features\.pt: the teacher feature store's checksum .* rule teacher"):
        load_store(tmp_path / "features.pt")


def test_the_clip_cache_gather_and_its_readers_refuse_a_missing_or_changed_shard(tiny_manifest, tmp_path):
    from svar.clips.receipt import gather
    from svar.clips.shards import build_shard
    from svar.clips.store import ClipStore

    from test_clip_cache import cache_options

    manifest, _ = tiny_manifest
    options = cache_options()["test"]
    shards = [build_shard(manifest, "test", options, i, 2, tmp_path / f"shard_{i:03d}_of_002.npy") for i in range(2)]
    with pytest.raises(ValueError, match=r"1 of 2 clip cache shards missing: .*shard_001_of_002\.npy"):
        gather(shards[:1], tmp_path / "one.json")
    with pytest.raises(ValueError, match="given twice"):
        gather([shards[0], *shards], tmp_path / "twice.json")
    receipt = gather(shards, tmp_path / "test.json")
    assert all(len(s["sha256"]) == 64 and len(s["index_sha256"]) == 64 for s in receipt["shards"])
    ClipStore.open(tmp_path / "test.json")  # as made: opens
    zero_in_place(shards[1], 1000, 256)  # black frames, same size
    with pytest.raises(ValueError, match=r"shard_001_of_002\.npy: checksum .* not trusted"):
        ClipStore.open(tmp_path / "test.json")
    with pytest.raises(ValueError, match=r"shard_001_of_002\.npy: checksum .* since rule clip_cache_shard wrote it"):
        gather(shards, tmp_path / "again.json")
    shards[1].unlink()
    with pytest.raises(ValueError, match=r"shard_001_of_002\.npy: missing"):
        ClipStore.open(tmp_path / "test.json")


def test_the_guard_moves_a_changed_part_aside_and_makes_its_receipt_stale(tiny_manifest, tmp_path):
    """What guard_outputs does before a run (svar.guard), on files: a zeroed shard moved aside and
    its receipt's record removed; a receipt naming other shards than clip_cache.shards asks for
    stale; a truncated table moved aside; a dry run only says so."""
    from svar.clips.receipt import gather
    from svar.clips.shards import build_shard
    from svar.guard import guard_clip_cache, guard_records

    from test_clip_cache import cache_options

    manifest, _ = tiny_manifest
    shards = [str(build_shard(manifest, "test", cache_options()["test"], i, 2, tmp_path / "clip_cache" / "test" /
                              f"shard_{i:03d}_of_002.npy")) for i in range(2)]
    receipt = tmp_path / "clip_cache" / "test.json"
    gather(shards, receipt)
    record(receipt)
    parts = [(str(receipt), str(record_path(receipt)), shards)]
    said = []
    guard_clip_cache(parts, said.append, dry_run=False)
    assert said == [] and record_path(receipt).exists()  # as made: nothing to do
    guard_clip_cache([(str(receipt), str(record_path(receipt)), shards + ["shard_002_of_003.npy"])], said.append, True)
    assert said == [f"{receipt}: holds 2 shards, clip_cache.shards is 3", f"{receipt}: stale; a run makes it again "
                    "(rule clip_cache)"] and record_path(receipt).exists()
    zero_in_place(shards[1], 500, 64)
    said.clear()
    guard_clip_cache(parts, said.append, dry_run=False)
    assert not os.path.exists(shards[1]) and os.path.exists(shards[1] + ".corrupt")
    assert not record_path(receipt).exists() and "checksum" in said[0] and "stale" in said[1]
    table = tmp_path / "summary.csv"
    table.write_text("method,top1\nx,0.5\n")
    record(table)
    os.truncate(table, 10)
    said.clear()
    guard_records(tmp_path, [tmp_path / "clip_cache"], said.append, dry_run=True)
    assert said == [f"{table}: size 10 bytes, recorded 18 since it was written; a run moves it aside and makes it "
                    "again"] and table.exists()
    guard_records(tmp_path, [tmp_path / "clip_cache"], said.append, dry_run=False)
    assert not table.exists() and table.with_name("summary.csv.changed").exists()


# --------------------------------------------------------------------------- the workflow


@pytest.fixture(scope="module")
def run_copy(tiny_run, tmp_path_factory):
    """A copy of the complete tiny run (its Snakemake records too), which these tests damage and
    repair in turn, and its metrics files' bytes."""
    workdir = tmp_path_factory.mktemp("verify") / "run"
    shutil.copytree(tiny_run[0], workdir, symlinks=True, copy_function=shutil.copy2)
    metrics = {p: p.read_bytes() for p in sorted((workdir / "results" / "tiny" / "runs").rglob("metrics.json"))}
    return workdir, metrics


def run(workdir, *args, config=TINY):
    result = snakemake(workdir, "--cores", "2", *args, "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_a_damaged_part_or_final_table_is_named_and_rebuilt_alone(run_copy):
    """Two shards of the test part damaged (one zeroed in place, one deleted) and a final table
    cut short: svar verify names the three; the next run rebuilds the two shards and the part's
    receipt, scores the students again (they read that part; training reads the other) and remakes
    the tables; the scores are the run's."""
    workdir, metrics = run_copy
    results = workdir / "results" / "tiny"
    clean = svar("verify", "results/tiny", cwd=workdir)
    assert clean.returncode == 0 and clean.stdout.endswith("files verified (results/tiny)\n"), clean.stdout
    print(clean.stdout)  # the must-show output
    zeroed = results / "clip_cache" / "test" / "shard_001_of_002.npy"
    deleted = results / "clip_cache" / "test" / "shard_000_of_002.npy"
    zero_in_place(zeroed, 1000, 512)
    deleted.unlink()
    os.truncate(results / "summary.csv", 10)
    said = svar("verify", "results/tiny", cwd=workdir)
    print(said.stdout)  # the must-show output
    assert said.returncode == 1
    assert "results/tiny/clip_cache/test/shard_001_of_002.npy: checksum" in said.stdout
    assert "results/tiny/clip_cache/test/shard_000_of_002.npy: missing" in said.stdout
    assert "results/tiny/summary.csv: size 10 bytes" in said.stdout and "3 of " in said.stdout
    dry = run(workdir, "-n")
    assert "results/tiny/summary.csv: size 10 bytes" in dry and "a run moves it aside" in dry
    assert zeroed.stat().st_size > 10 and (results / "clip_cache" / "test.json").exists()  # a dry run changes nothing
    out = run(workdir)
    assert "clip_cache/test/shard_001_of_002.npy: checksum" in out and "moved to" in out
    counts = job_counts(out)
    assert counts.get("clip_cache_shard") == 2 and counts.get("clip_cache") == 1 and counts.get("aggregate") == 1
    assert "train" not in counts and counts.get("evaluate") == len(STUDENT_METHODS), counts
    assert svar("verify", "results/tiny", cwd=workdir).returncode == 0
    assert {p: p.read_bytes() for p in metrics} == metrics
    assert "Nothing to be done" in run(workdir, "-n")


@pytest.mark.slow
def test_more_clip_cache_shards_rebuild_the_cache_and_rerun_no_run(run_copy, tmp_path):
    """clip_cache.shards 2 -> 3 after a complete run: the cache is kept as it was cut and nothing
    reruns but the plan and the report; the setting applies to the next build of a part, whose
    3 shards give the students the same scores."""
    workdir, metrics = run_copy
    config = write_config(tmp_path / "shards3.yaml", clip_cache={"shards": 3})
    counts = job_counts(run(workdir, "-n", config=config))
    assert set(counts) <= {"plan", "report", "all", "total"}, counts
    out = run(workdir, config=config)
    assert not {"clip_cache_shard", "clip_cache", "train", "evaluate"} & set(job_counts(out)), job_counts(out)
    assert {p: p.read_bytes() for p in metrics} == metrics
    # the test part built again, now in 3 shards: the students scored from it score the same
    cache = workdir / "results" / "tiny" / "clip_cache"
    shutil.rmtree(cache / "test")
    for path in cache.glob("*test.json*"):
        path.unlink()
    counts = job_counts(run(workdir, config=config))
    assert counts["clip_cache_shard"] == 3 and counts["evaluate"] == len(STUDENT_METHODS), counts
    assert len(json.loads((cache / "test.json").read_text())["shards"]) == 3
    assert {p: p.read_bytes() for p in metrics} == metrics
