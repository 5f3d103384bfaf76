"""Devices: one code path on CPU (fp32) and CUDA (bf16 autocast)."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto", key: str = "device") -> torch.device:
    """`auto` is CUDA when there is one, else the CPU; otherwise a torch device name, which must
    exist here (`key` names the setting in the error)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            raise ValueError(f"{key}: {name} asked for, but torch sees {count} CUDA device(s) here; "
                             "use auto (CUDA when there is one) or cpu")
    return device


def job_device(name: str = "auto", key: str = "device") -> torch.device:
    """The device a job of the workflow computes on: `resolve_device`'s, and when that is CUDA
    with no index given (auto, cuda), a GPU this process holds alone (svar.gpu_slots), made the
    current device before any CUDA work. An explicit index (cuda:1) is the user's choice and used
    as given, without a slot."""
    device = resolve_device(name, key)
    if device.type != "cuda" or (name != "auto" and torch.device(name).index is not None):
        return device
    from .gpu_slots import hold

    slot = hold()
    torch.cuda.set_device(slot.index)
    return torch.device("cuda", slot.index)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU. For timings."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device):
    """bf16 on CUDA, plain fp32 on CPU: the same code runs on both."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
