"""One GPU per job (svar.gpu_slots), without GPUs: the device list is injected, the jobs are real
processes holding lock files in a test folder."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import dry_run_jobs
from svar import gpu_slots
from svar.device import job_device

ROOT = Path(__file__).resolve().parents[1]

# a job: takes a slot among the devices given (or, with none given, CUDA_VISIBLE_DEVICES's), says
# which on stdout, then holds it until its stdin closes
JOB = textwrap.dedent("""
    import json, logging, sys
    from svar import gpu_slots
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    devices = sys.argv[2].split(",") if sys.argv[2] else None
    slot = gpu_slots.acquire(devices if devices is not None else gpu_slots.visible_devices(), sys.argv[1], poll=0.05)
    print(json.dumps({"index": slot.index, "id": slot.device_id}), flush=True)
    sys.stdin.read()
""")


class Job:
    def __init__(self, folder, devices: str, env=None):
        self.proc = subprocess.Popen([sys.executable, "-c", JOB, str(folder), devices], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})

    def slot(self, timeout: float = 30.0):
        """The slot the job took, or None if it has taken none within `timeout` seconds."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return json.loads(self.proc.stdout.readline()) if ready else None

    def end(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        return self.proc.stderr.read()


@pytest.fixture
def jobs():
    started = []

    def start(*args, **kwargs):
        started.append(Job(*args, **kwargs))
        return started[-1]

    yield start
    for job in started:
        if job.proc.poll() is None:
            job.proc.kill()
        job.proc.wait(timeout=30)


def test_concurrent_jobs_take_different_devices(tmp_path, jobs):
    a, b = jobs(tmp_path, "0,1,2,3"), jobs(tmp_path, "0,1,2,3")
    taken = [a.slot(), b.slot()]
    assert sorted(s["index"] for s in taken) == [0, 1]
    # the third job gets the first device free again once a job ends
    first = a if taken[0]["index"] == 0 else b
    first.end()
    assert jobs(tmp_path, "0,1,2,3").slot() == {"index": 0, "id": "0"}


def test_a_killed_job_frees_its_device(tmp_path, jobs):
    a = jobs(tmp_path, "0")
    assert a.slot() == {"index": 0, "id": "0"}
    os.kill(a.proc.pid, signal.SIGKILL)
    a.proc.wait(timeout=30)
    assert (tmp_path / "gpu-0.lock").exists()  # the file stays; its lock went with the process
    assert jobs(tmp_path, "0").slot(timeout=10) == {"index": 0, "id": "0"}


def test_with_one_device_the_second_job_waits_for_the_first(tmp_path, jobs):
    a = jobs(tmp_path, "0")
    assert a.slot() == {"index": 0, "id": "0"}
    b = jobs(tmp_path, "0")
    assert b.slot(timeout=2) is None  # waiting, not doubling up
    a.end()
    assert b.slot() == {"index": 0, "id": "0"}
    assert "every GPU slot is taken (1 device(s): 0" in b.end()


def test_cuda_visible_devices_map_slots_to_their_devices(tmp_path, jobs):
    assert gpu_slots.visible_devices({"CUDA_VISIBLE_DEVICES": "2,5"}) == ["2", "5"]
    assert gpu_slots.visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert gpu_slots.visible_devices({}, count=3) == ["0", "1", "2"]
    env = {"CUDA_VISIBLE_DEVICES": "2,5"}
    a, b = jobs(tmp_path, "", env), jobs(tmp_path, "", env)
    assert sorted([a.slot(), b.slot()], key=lambda s: s["index"]) == [{"index": 0, "id": "2"}, {"index": 1, "id": "5"}]
    assert {p.name for p in tmp_path.iterdir()} == {"gpu-2.lock", "gpu-5.lock"}
    # a job that sees GPU 5 alone (as its cuda:0) waits for the job that holds it as cuda:1
    only5 = jobs(tmp_path, "", {"CUDA_VISIBLE_DEVICES": "5"})
    assert only5.slot(timeout=2) is None
    a.end()
    b.end()
    assert only5.slot() == {"index": 0, "id": "5"}


def test_the_slot_folder(monkeypatch, tmp_path):
    assert gpu_slots.slots_folder({"SVAR_GPU_SLOTS": str(tmp_path)}) == tmp_path
    default = gpu_slots.slots_folder({})
    assert default.name.startswith("svar-gpu-slots-")
    # SLURM has chosen the job's GPUs: its jobs do not exclude each other by their local ids
    assert gpu_slots.slots_folder({"SLURM_JOB_ID": "42"}) == default / "slurm-42"
    with pytest.raises(ValueError, match="no CUDA device is visible"):
        gpu_slots.acquire([], tmp_path)


def test_job_device_holds_one_slot_on_cuda_and_none_on_the_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("SVAR_GPU_SLOTS", str(tmp_path / "slots"))
    monkeypatch.setattr(gpu_slots, "_held", None)
    assert job_device("cpu", "train.device") == torch.device("cpu")
    assert not (tmp_path / "slots").exists()
    # a machine with two GPUs, the first taken by another job
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    current = []
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    other = gpu_slots.acquire(["0", "1"], tmp_path / "slots")
    assert job_device("auto", "train.device") == torch.device("cuda", 1)
    assert job_device("cuda", "evaluate.device") == torch.device("cuda", 1)  # the process keeps its slot
    assert current == [1, 1]
    assert job_device("cuda:0", "train.device") == torch.device("cuda", 0)  # an explicit index: as given
    other._file.close()


def test_gpu_rules_ask_a_gpu_for_the_jobs_that_may_use_one(tmp_path):
    """Resource gpu (what --resources gpu=N and the SLURM profile count): 1 for a job whose device
    setting may be CUDA, 0 for one set to cpu and for a teacher-only head."""
    from conftest import TINY

    overlay = tmp_path / "cpu-train.yaml"
    overlay.write_text("train: {device: cpu}\n")
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "-n", "--cores", "1", "--configfile", str(TINY), str(overlay)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    from svar.methods import METHODS

    blocks = {}
    for job in dry_run_jobs(result.stdout):
        head = job["rule"] in ("train", "evaluate") and not METHODS[job["wildcards"]["method"]].trains_student
        blocks.setdefault(job["rule"] + (" head" if head else ""), set()).add(job["resources"].get("gpu"))
    assert blocks["train"] == blocks["train head"] == blocks["evaluate head"] == {"0"}
    assert blocks["teacher_shard"] == blocks["evaluate"] == blocks["pretrain_teacher"] == {"1"}
    assert blocks["index"] == {None}
