"""An exponential moving average of a model's weights: what `train.ema` evaluates, and the
teacher of `mean_teacher`."""

from __future__ import annotations

import torch


class EMA:
    """Exponential moving average of a model's parameters, as USB's EMA and EMAHook keep it:
    shadow = decay · shadow + (1 − decay) · parameter after every step, with a constant decay;
    buffers (batch-norm running statistics) are the model's own, copied. `state` is the EMA
    model's whole state dict, what validation and evaluation load."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.averaged = {name for name, _ in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        avg, cur = [], []
        for k, v in model.state_dict().items():
            if k in self.averaged:
                avg.append(self.state[k])
                cur.append(v.detach())
            else:
                self.state[k].copy_(v)
        torch._foreach_lerp_(avg, cur, 1 - self.decay)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
        for k, v in state["state"].items():
            self.state[k].copy_(v)
