"""The worker's epoch iterator over a Ray dataset. Prefetching in iter_torch_batches changes no
batch: it yields the same batches in the same order without prefetching and with the default, so
the losses of a seeded run do not depend on it. (With 2 or more, Ray 2.60's seeded local shuffle
gave a different order for the first batches in about one epoch in four: not the default.)
Fetching several steps' rows at once keeps the number of steps and their size."""
from __future__ import annotations

import numpy as np
import pytest
import ray
import torch

from gan_core.config import TrainConfig
from pipelines.worker import epoch_batches, fetch_batches

pytestmark = pytest.mark.integration


IMAGES = np.random.default_rng(0).standard_normal((600, 1, 8, 8)).astype(np.float32)


def _epoch(prefetch: int = 1, fetch: int = 0, seed: int = 3) -> list[torch.Tensor]:
    ds = ray.data.from_numpy(IMAGES).rename_columns({"data": "x"}).materialize()
    t = TrainConfig(batch_size=32, prefetch_batches=prefetch, fetch_batches=fetch)
    return [b["x"] for b in epoch_batches(ds.iterator(), t, pin_memory=False, shuffle_seed=seed,
                                          row_numel=64)]


@pytest.mark.parametrize("fetch", [1, 0])  # a step's rows at a time (the most fetches); default
def test_prefetch_changes_no_batch(local_ray, fetch):
    plain = _epoch(0, fetch)
    assert TrainConfig().prefetch_batches > 0
    assert len(plain) == 600 // 32 and plain[0].shape == (32, 1, 8, 8)
    for _ in range(4):  # a timing-dependent order would show within a few epochs
        prefetched = _epoch(TrainConfig().prefetch_batches, fetch)
        assert all(torch.equal(a, b) for a, b in zip(plain, prefetched, strict=True))
    # the local shuffle is on: equality is not the data's own order
    assert not torch.equal(torch.cat(plain), torch.from_numpy(IMAGES[:len(plain) * 32]))


def test_fetching_many_steps_at_once_keeps_the_steps(local_ray):
    # 600 rows, batch 32: 18 steps whatever a fetch holds (16 steps: 512 + 88 rows, tail of 24
    # dropped; 5 steps: 160 x 3 + 120); every rank of a DDP run must step as often as the others
    one = _epoch(fetch=1)
    for fetch in (5, 0):
        many = _epoch(fetch=fetch)
        assert len(many) == len(one) == 600 // 32
        assert all(b.shape == (32, 1, 8, 8) for b in many)
        rows = {tuple(r.flatten().tolist()) for b in many for r in b}
        assert len(rows) == 18 * 32  # no row twice in an epoch
        assert rows <= {tuple(r.flatten().tolist()) for r in IMAGES}
        assert not torch.equal(torch.cat(many), torch.from_numpy(IMAGES[:18 * 32]))  # shuffled
    assert all(torch.equal(a, b) for a, b in zip(_epoch(), _epoch(), strict=True))  # seeded
    assert not torch.equal(torch.cat(_epoch(seed=3)), torch.cat(_epoch(seed=4)))


@pytest.mark.parametrize("shape, batch, steps", [
    ((2,), 256, 16),  # the grid MLP: 2 KiB a step, capped at 16 steps
    ((1, 28, 28), 64, 16),  # MNIST DCGAN: 196 KiB a step
    ((3, 28, 28), 64, 6),  # Stacked MNIST: 588 KiB
    ((3, 96, 96), 16, 2),  # SRGAN crops: 1.7 MiB
    ((3, 256, 256), 16, 1),  # 12 MiB a step: one at a time
])
def test_automatic_fetch_size(shape, batch, steps):
    numel = int(np.prod(shape))
    assert fetch_batches(TrainConfig(batch_size=batch), numel) == steps
    assert fetch_batches(TrainConfig(batch_size=batch, fetch_batches=3), numel) == 3
