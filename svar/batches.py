"""The trainer's batches: which videos, frames and views each step trains on, and the batch cut
from the cached frames.

Every random draw (the shuffled passes over the pools, each clip's frames, its crop and flip, the
strong view's ops and parameters) comes from the run's one seeded CPU generator, on the thread
that calls `Batches.next`, in the order training has always made them. The cut — frames read
from the clip cache, cropped, augmented, copied to the device — reads those draws and makes none,
so it can run on another thread: with `prefetch` on, the batch after the current one is cut in
a background thread while the current step runs, and the batches are byte for byte those of
in-line building (tested). Nothing in the cut touches a generator the step may use (torch's
global one, the CUDA one): transforms.v2's own draws are made with the others, from the global
generator seeded from the run's and restored at once (svar.clips.views).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

import torch

from .clips.sampling import ClipSpec
from .clips.store import ClipCache, clip_indices, read_clips
from .clips.views import (apply_randaugment, apply_strong, cut_train_crops, draw_randaugment, draw_strong,
                         draw_train_crops, eval_views, to_device)


# what building a strong view reads (a method's batches hold one where it needs "strong_view")
STRONG_VIEW_KEYS = ("train.strong_area", "train.strong_cutout", "train.randaugment_ops", "train.randaugment_magnitude")


class EpochSampler:
    """Indices in shuffled passes over a pool, drawn from the shared generator."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator, self.order, self.pos = n, generator, torch.empty(0, dtype=torch.long), 0

    def take(self, k: int) -> torch.Tensor:
        out = []
        while k > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = torch.randperm(self.n, generator=self.generator), 0
            chunk = self.order[self.pos:self.pos + k]
            self.pos += len(chunk)
            k -= len(chunk)
            out.append(chunk)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"n": self.n, "order": self.order.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        if state["n"] != self.n:
            raise ValueError(f"sampler state is for a pool of {state['n']}, not {self.n}")
        self.order, self.pos = state["order"].clone(), int(state["pos"])


def prefetch_pays(device: torch.device) -> bool:
    """Whether cutting the next batch in a background thread pays: on CUDA, where the host is free
    while the GPU runs the step. A CPU job builds its batches in line: its step takes the cores the
    job asked for, and the cut beside it only competes for them (`svar bench train` with the
    default config on this 2-core CPU, real / model-only ratio: one thread pinned to one core,
    prefetched 0.862 and 0.856 against 0.866 and 0.877 in line; two threads, prefetched 0.844 and
    0.870 against 0.867 and 0.875; with a core of its own beside a one-thread step, as a GPU job's
    host has, prefetched 0.932, 0.936, 0.904 against 0.874 and 0.850 in line)."""
    return device.type == "cuda"


class Batches:
    """The batches of one run: labeled clips (pool rows `rows_l` of `clips`) always, unlabeled
    ones (`rows_u`) when `b_u` > 0, with what the method asks for of each: `labeled` and
    `unlabeled` map a batch key to a per-video tensor on the device (y_l, t_l, …; t_u, pl_u, …)
    that the batch takes the sampled rows of. `prefetch`: cut the next batch in a background
    thread (`next`)."""

    def __init__(self, clips: ClipCache, spec: ClipSpec, t_opts: dict, method, generator: torch.Generator,
                 rows_l: torch.Tensor, rows_u: torch.Tensor, b_l: int, b_u: int, labeled: dict, unlabeled: dict,
                 device: torch.device, prefetch: bool = False, pool_u: int | None = None):
        self.clips, self.spec, self.t_opts, self.method = clips, spec, t_opts, method
        self.generator, self.device = generator, device
        self.rows_l, self.rows_u, self.b_l, self.b_u = rows_l, rows_u, b_l, b_u
        self.labeled, self.unlabeled = labeled, unlabeled
        self.sampler_l = EpochSampler(len(rows_l), generator)
        # pool_u: the unlabeled pool's size, as resume checkpoints record it even when no batch draws from it
        self.sampler_u = EpochSampler(len(rows_u) if pool_u is None else pool_u, generator)
        self.prefetch = prefetch
        self._cutter = ThreadPoolExecutor(1, thread_name_prefix="svar-batch") if prefetch else None
        # the next batch being cut in the background, and the draws' state from before its draws
        self._next: tuple | None = None

    # ------------------------------------------------------------------ draws

    def _draw_clips(self, rows: torch.Tensor) -> dict:
        """The draws of one training clip of each cached video in `rows`: its frames (by the
        sampling mode) and its training view (train.crop, flip)."""
        t = self.t_opts
        h, w = self.clips.frames.shape[1:3]
        return {"frames": clip_indices(self.clips, rows, self.spec, self.generator),
                "crops": draw_train_crops(len(rows), h, w, self.spec.size, self.generator, t["crop"],
                                          t.get("crop_padding", 0), t.get("crop_scale", (0.25, 1.0)), t["flip"])}

    def _draw(self) -> dict:
        """Every random draw of the next batch; nothing is read yet."""
        t = self.t_opts
        idx_l = self.sampler_l.take(self.b_l)
        draws = {"idx_l": idx_l, "l": self._draw_clips(self.rows_l[idx_l])}
        if self.b_u:
            idx_u = self.sampler_u.take(self.b_u)
            draws.update(idx_u=idx_u, u=self._draw_clips(self.rows_u[idx_u]))
            if "strong_view" in self.method.needs:
                # the strong view makes its own random resized crop: from the centre of the same frames
                size = self.spec.size
                draws["randaugment"] = draw_randaugment(len(idx_u), size, size, self.generator,
                                                        t["randaugment_ops"], t["randaugment_magnitude"])
                draws["strong"] = draw_strong(len(idx_u), size, size, self.generator, flip=t["flip"],
                                              area=t["strong_area"], cutout=t["strong_cutout"])
        return draws

    # ------------------------------------------------------------------ the cut

    def _cut(self, draws: dict) -> dict:
        """The batch `draws` describe: frames read from the cache, cut, copied to the device."""
        dev = self.device
        frames_l = read_clips(self.clips, draws["l"]["frames"])
        batch = {"x_l": to_device(cut_train_crops(frames_l, draws["l"]["crops"]), dev)}
        idx_l = to_device(draws["idx_l"], dev)
        batch.update({key: values[idx_l] for key, values in self.labeled.items()})
        if self.b_u:
            frames_u = read_clips(self.clips, draws["u"]["frames"])
            batch["x_u"] = to_device(cut_train_crops(frames_u, draws["u"]["crops"]), dev)
            if "strong_view" in self.method.needs:
                centre = apply_randaugment(eval_views(frames_u, self.spec.size, 1)[0].contiguous(),
                                           draws["randaugment"])
                batch["x_u_strong"] = apply_strong(to_device(centre, dev), draws["strong"])
            idx_u = to_device(draws["idx_u"], dev)
            batch["idx_u"] = idx_u
            batch.update({key: values[idx_u] for key, values in self.unlabeled.items()})
        return batch

    def next(self, prefetch_next: bool = True) -> dict:
        """The next batch. With `prefetch` on, it was cut while the last step ran, and the one after
        it is drawn here and handed to the background thread before this returns (none when
        `prefetch_next` is False: the last step)."""
        if self._next is not None:
            future, _ = self._next
            self._next = None
            batch = future.result()
        else:
            batch = self._cut(self._draw())
        if self._cutter is not None and prefetch_next:
            before = self._draw_state()
            self._next = (self._cutter.submit(self._cut, self._draw()), before)
        return batch

    def settle(self) -> None:
        """Wait until the batch in flight (if any) is cut; the next `next` returns it."""
        if self._next is not None:
            wait([self._next[0]])

    def close(self) -> None:
        """Stop the background thread; the batch in flight, if any, is dropped."""
        self.settle()
        self._next = None
        if self._cutter is not None:
            self._cutter.shutdown(wait=True)
            self._cutter = None

    # ------------------------------------------------------------------ resume

    def _draw_state(self) -> dict:
        return {"generator": self.generator.get_state(), "sampler_l": self.sampler_l.state_dict(),
                "sampler_u": self.sampler_u.state_dict()}

    def state_dict(self) -> dict:
        """The state of everything the draws advance (generator, samplers); with a batch in flight,
        as it was before that batch's draws: a run resumed from it draws that batch again."""
        return self._next[1] if self._next is not None else self._draw_state()

    def load_state_dict(self, state: dict) -> None:
        if self._next is not None:  # drawn from the state being replaced
            self.settle()
            self._next = None
        self.generator.set_state(state["generator"])
        self.sampler_l.load_state_dict(state["sampler_l"])
        self.sampler_u.load_state_dict(state["sampler_u"])
