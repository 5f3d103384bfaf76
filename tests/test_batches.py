"""The trainer's batches (svar/batches.py, svar/clips/views.py's draw/cut pairs): the draws made apart
from the cut give transforms.v2's own views; the cut draws nothing; a batch cut in the background
while the step runs is the batch built in line, and a checkpoint taken with one in flight resumes
to the same batches (the runs themselves: test_resume.py)."""

import numpy as np
import pytest
import torch

from svar.clips.views import _seeded, randaugment, train_crops
from svar.methods import get_method
from svar.splits import make_split
from svar.trainer import Trainer

from test_training import with_options


def v2_views(clips, generator, crop_scale=None, randaugment_ops=None):
    """What training drew and cut before the draws were made apart: v2's transforms called on each
    clip inside a fork of torch's global generator seeded from `generator` (the reference)."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    seed = _seeded(generator)
    if crop_scale is not None:
        transform = v2.RandomResizedCrop(8, scale=crop_scale, antialias=True)
    else:
        transform = v2.RandAugment(num_ops=randaugment_ops, magnitude=9)
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    out = torch.stack([transform(tv_tensors.Video(c.permute(0, 3, 1, 2))).as_subclass(torch.Tensor) for c in clips])
    flips = torch.rand(len(clips)) < 0.5 if crop_scale is not None else None
    torch.set_rng_state(state)
    out = out.permute(0, 1, 3, 4, 2)
    return torch.where(flips.view(-1, 1, 1, 1, 1), out.flip(3), out) if flips is not None else out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_views_drawn_apart_from_the_cut_are_v2s_own(seed):
    clips = torch.randint(0, 256, (6, 3, 12, 14, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(9))
    before = torch.get_rng_state()
    ours = train_crops(clips, 8, torch.Generator().manual_seed(seed), "random_resized", scale=(0.3, 1.0), flip=True)
    assert torch.equal(ours, v2_views(clips, torch.Generator().manual_seed(seed), crop_scale=(0.3, 1.0)))
    ours = randaugment(clips, torch.Generator().manual_seed(seed), 3, 9)
    assert torch.equal(ours, v2_views(clips, torch.Generator().manual_seed(seed), randaugment_ops=3))
    assert not torch.equal(ours, clips)
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is put back


def trainers(manifest, store, name="fixmatch", **train):
    """The same run twice: building its batches in line, and cutting them in the background."""
    split = make_split(manifest, 0.5, seed=0)
    options = with_options(train={"flip": True, "crop": "random_resized", "crop_scale": [0.3, 1.0], **train})
    out = []
    for prefetch in (False, True):
        torch.manual_seed(0)
        trainer = Trainer(manifest, split, store, get_method(name, options), options, 0, prefetch=prefetch)
        trainer.student.train()
        out.append(trainer)
    return out


def same(a: dict, b: dict) -> bool:
    equal = lambda x, y: torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
    return list(a) == list(b) and all(equal(a[k], b[k]) for k in a)


def test_a_batch_cut_in_the_background_is_the_one_built_in_line(tiny_manifest, tiny_store):
    """fixmatch: weak views (random resized crops, flips) and strong views (RandAugment and the
    strong augmentation), each step drawing from torch's global generator as dropout would while
    the next batch is cut; the batches, the weights and the global generator stay those of in-line
    building, and a state saved with a batch in flight is the in-line run's state."""
    manifest, _ = tiny_manifest
    inline, prefetched = trainers(manifest, tiny_store)
    steps = 5
    for step in range(steps):
        a = inline.next_batch()
        b = prefetched.next_batch(prefetch_next=step + 1 < steps)
        assert same(a, b), step
        assert (prefetched.batches._next is not None) == (step + 1 < steps)
        sa, sb = inline.state_dict(), prefetched.state_dict()
        assert all(same(sa[k], sb[k]) for k in ("sampler_l", "sampler_u"))
        assert torch.equal(sa["generator"], sb["generator"])
        for trainer, batch in ((inline, a), (prefetched, b)):
            torch.rand(1000)  # the step's own draws from the global generator (dropout's)
            trainer.step(batch, step)
    assert same(inline.student.state_dict(), prefetched.student.state_dict())
    prefetched.close()


def test_the_cut_draws_nothing(tiny_manifest, tiny_store):
    manifest, _ = tiny_manifest
    trainer = trainers(manifest, tiny_store)[0]
    draws = trainer.batches._draw()
    run, global_ = trainer.generator.get_state(), torch.get_rng_state()
    first = trainer.batches._cut(draws)
    assert torch.equal(trainer.generator.get_state(), run) and torch.equal(torch.get_rng_state(), global_)
    assert same(first, trainer.batches._cut(draws))  # and the same draws cut the same batch


def test_a_state_loaded_with_a_batch_in_flight_draws_it_again(tiny_manifest, tiny_store):
    """A checkpoint saved while batch k+1 is being cut holds the draws' state from before it: a
    trainer loading it (prefetching or not) builds batch k+1 again, and the one that was in flight
    is dropped when a state is loaded into its own trainer."""
    manifest, _ = tiny_manifest
    inline, prefetched = trainers(manifest, tiny_store, name="distill_pl")
    for step in range(3):
        prefetched.step(prefetched.next_batch(), step)
    state = prefetched.state_dict()  # batch 3 in flight
    expected = prefetched.next_batch()
    inline.load_state_dict(state)
    assert same(inline.next_batch(), expected)
    prefetched.load_state_dict(state)
    assert prefetched.batches._next is None
    assert same(prefetched.next_batch(), expected)
    prefetched.close()
    assert np.isfinite(float(inline.step(expected, 3)[0]))
