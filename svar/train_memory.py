"""The peak GPU memory of one training step of a student, estimated before anything runs.

The largest part is what autograd keeps from the forward for the backward: every tensor a layer
saves. `saved_bytes` counts them in a forward of the student's backbone on torch's
`meta` device (shapes only: no memory, no compute), at the real clip size, in bf16 — what the
trainer's CUDA autocast (svar.device.autocast) makes of every convolution's input and output.
Tensors saved twice (a ReLU's output is the next convolution's input) are counted once, by
storage. Under autocast each convolution also saves a bf16 copy of its weight: that is 2 bytes
a parameter, counted with the parameters. On the CPU, a real forward + backward under bf16
autocast saves exactly these bytes (tests/test_plan.py compares them).

Beside them, per parameter: the fp32 weights (4 bytes), their gradients (4), the optimizer's
state (AdamW: 2 states, 8 bytes; SGD with momentum: 1 state, 4) and the EMA of the weights
(`train.ema` > 0: 4). Then a margin, assumed, not measured on a GPU: 20% of the saved
activations for what the backward holds besides them (the gradient of the activations it is at)
and the caching allocator's rounding, and 1 GB for the CUDA context, the cuDNN workspaces and
the trainer's small device tensors (labels, teacher features). Left out: the head and the
distillation projection (a linear layer each: under 1% of a torchvision student's parameters).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# the margin (see the module's docstring): a share of the saved activations, and a fixed part
ACTIVATION_MARGIN = 0.2
CONTEXT_BYTES = 1e9
# bytes an element: activations in bf16 (autocast), weights and their states in fp32
ACTIVATION_DTYPE_BYTES = 2
OPTIMIZER_STATES = {"adamw": 2, "sgd": 1}  # AdamW: exp_avg, exp_avg_sq; SGD-Nesterov: momentum_buffer
# the usual GPU memory sizes (GB) a plan is checked against
GPU_SIZES_GB = (16, 24, 40, 80)


def _saved_bytes(net, batch: int, frames: int, size: int, dtype) -> int:
    """Bytes of the storages autograd saves in one forward of `batch` clips on the meta device,
    the net's parameters left out."""
    import torch

    # by storage, not tensor: a linear layer on a 3-D input saves its weight's transpose, a view
    params = {p.untyped_storage()._cdata for p in net.parameters()}
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage._cdata not in params:
            saved.setdefault(storage._cdata, (storage.nbytes(), t))  # t kept alive: its storage's id stays its own
        return t

    x = torch.empty(batch, 3, frames, size, size, device="meta", dtype=dtype)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net.forward_features(x.contiguous(memory_format=torch.channels_last_3d))
    return sum(n for n, _ in saved.values())


@functools.lru_cache(maxsize=None)
def saved_bytes(arch: str, frames: int, size: int, dtype_bytes: int = ACTIVATION_DTYPE_BYTES) -> tuple[int, int, int]:
    """(bytes autograd saves a clip [3, frames, size, size] in a forward through the arch's
    backbone, the bytes it saves whatever the batch (batch norm's statistics a channel), the
    backbone's parameters): counted on the meta device at batches 2 and 4 (batch norm refuses a
    batch of one clip whose map has shrunk to one value), in bf16 (dtype_bytes 2) or fp32 (4).
    Saved parameters are left out (their bf16 copies are counted per parameter)."""
    import torch

    from .students import STUDENTS, channels_last_3d

    dtype = {2: torch.bfloat16, 4: torch.float32}[dtype_bytes]
    with torch.device("meta"):
        net = STUDENTS[arch].make()
    net = channels_last_3d(net.to(dtype=dtype))
    two, four = (_saved_bytes(net, b, frames, size, dtype) for b in (2, 4))
    per_clip = (four - two) // 2
    return per_clip, two - 2 * per_clip, sum(p.numel() for p in net.parameters())


@dataclass
class StepMemory:
    """The parts of one training step's peak GPU memory, in bytes."""

    clips: int
    activations: float
    parameters: float  # fp32 weights, their gradients, the optimizer's states, the EMA, autocast's bf16 copies
    margin: float

    @property
    def total(self) -> float:
        return self.activations + self.parameters + self.margin

    def too_small(self) -> list[int]:
        """The usual GPU sizes (GB) it does not fit."""
        return [gb for gb in GPU_SIZES_GB if self.total > gb * 1e9]


def step_memory(arch: str, frames: int, size: int, clips: int, optimizer: str, ema: bool) -> StepMemory:
    """The estimated peak GPU memory of a training step of `clips` clips (svar.plan.clips_per_step)."""
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"train.optimizer: unknown optimizer {optimizer!r}; choose {', '.join(OPTIMIZER_STATES)}")
    per_clip, fixed, n_params = saved_bytes(arch, int(frames), int(size))
    activations = fixed + per_clip * clips
    per_param = 4 + 4 + 4 * OPTIMIZER_STATES[optimizer] + (4 if ema else 0) + ACTIVATION_DTYPE_BYTES
    return StepMemory(clips, activations, per_param * n_params, ACTIVATION_MARGIN * activations + CONTEXT_BYTES)
