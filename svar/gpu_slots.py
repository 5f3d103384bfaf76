"""One GPU per job on a machine with several: slots held with lock files.

Snakemake assigns no device ids to local jobs (snakemake issue #281), so with `device: auto`
every job of `snakemake --cores 32` on a 4-GPU workstation would run on cuda:0. Instead, a job
whose device resolves to CUDA takes a slot: one lock file per visible device in a folder the
jobs of one machine share, the first free one locked (fcntl.flock) for the life of the process.
The kernel drops the lock when the process ends, however it ends (a crash, SIGKILL, the node's
OOM killer), so a dead job's device is free for the next one at once. With every slot taken, a
job waits (saying so in its log) rather than share a device. Rule resources `gpu=1` with
`snakemake --resources gpu=N` keep the waiting jobs from taking cores meanwhile.

The visible devices are CUDA_VISIBLE_DEVICES's entries when it is set (SLURM sets it for a job's
GPUs; slot i is then the i-th of them, cuda:i to torch), else torch's device count. A slot's lock
file is named by the device's own id (its CUDA_VISIBLE_DEVICES entry), so jobs that see the same
GPU under different indexes still exclude each other.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# where the lock files lie: one folder for every job of a machine (a user's jobs, by default)
FOLDER_ENV = "SVAR_GPU_SLOTS"
# seconds between tries while every slot is taken, and between the log lines that say so
POLL_S = 2.0
REMIND_S = 600.0


@dataclass
class Slot:
    """A device this process holds: torch's index for it (cuda:<index>), its id among the
    machine's GPUs, and the lock file, open and locked while the process lives."""

    index: int
    device_id: str
    lock_path: Path
    _file: object = None


_held: Slot | None = None


def visible_devices(env=None, count: int | None = None) -> list[str]:
    """The ids of the GPUs this process may use, in torch's order: CUDA_VISIBLE_DEVICES's entries
    when it is set, else 0 .. count-1 (count: torch.cuda.device_count() when not given)."""
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        # CUDA stops at the first entry it cannot parse; an empty value hides every GPU
        return [entry.strip() for entry in visible.split(",") if entry.strip()]
    if count is None:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [str(i) for i in range(count)]


def slots_folder(env=None) -> Path:
    """$SVAR_GPU_SLOTS, else a folder in the system's temp dir keyed by user. Inside a SLURM job
    the default is keyed by the job too: SLURM has given the job its GPUs, and under cgroups
    every job on a node may see its own GPU as CUDA_VISIBLE_DEVICES=0, so jobs must not exclude
    each other by that id; the steps of one allocation (snakemake inside salloc) still share it."""
    env = os.environ if env is None else env
    if env.get(FOLDER_ENV):
        return Path(env[FOLDER_ENV])
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): its number
        user = str(os.getuid())
    folder = Path(tempfile.gettempdir()) / f"svar-gpu-slots-{user}"
    job = env.get("SLURM_JOB_ID")
    return folder / f"slurm-{job}" if job else folder


def _lock_name(device_id: str) -> str:
    # an id may be a GPU UUID (GPU-8a3f...) or a MIG name: file-name-safe
    return "gpu-" + re.sub(r"[^A-Za-z0-9_.-]", "_", device_id) + ".lock"


def _try_lock(path: Path):
    """The open, locked file, or None when another process holds its lock."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")  # who holds it, for a person looking at the folder
    handle.flush()
    return handle


def acquire(devices: list[str], folder=None, poll: float = POLL_S, remind: float = REMIND_S) -> Slot:
    """Lock the first free device of `devices` (ids, in torch's order) for this process's life;
    wait while all are taken. Not reentrant: see `hold` for the process's one slot."""
    if not devices:
        raise ValueError("no CUDA device is visible (CUDA_VISIBLE_DEVICES empty?); use device: cpu")
    folder = Path(folder) if folder is not None else slots_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot make the GPU slot folder {folder} ({exc.strerror}); point "
                                 f"{FOLDER_ENV} at a writable folder every job of this machine sees") from None
    started = last_said = time.monotonic()
    said = False
    while True:
        for index, device_id in enumerate(devices):
            path = folder / _lock_name(device_id)
            handle = _try_lock(path)
            if handle is not None:
                waited = time.monotonic() - started
                log.info("GPU slot: cuda:%d (device %s of %s, lock %s)%s", index, device_id, ",".join(devices),
                         path, f" after waiting {waited:.0f} s" if said else "")
                return Slot(index, device_id, path, handle)
        now = time.monotonic()
        if not said or now - last_said >= remind:
            log.warning("every GPU slot is taken (%d device(s): %s; locks in %s): waiting for a job to end "
                        "rather than sharing a GPU", len(devices), ",".join(devices), folder)
            said, last_said = True, now
        time.sleep(poll)


def hold(devices: list[str] | None = None, folder=None) -> Slot:
    """This process's slot: acquired on the first call, the same one afterwards (a job that
    builds several models, e.g. evaluate scoring a method's runs, keeps its device)."""
    global _held
    if _held is None:
        _held = acquire(visible_devices() if devices is None else devices, folder)
    return _held
