"""Prefetching in iter_torch_batches changes no batch: the worker's epoch iterator over a Ray
dataset yields the same batches in the same order without prefetching and with the default, so
the losses of a seeded run do not depend on it. (With 2 or more, Ray 2.60's seeded local shuffle
gave a different order for the first batches in about one epoch in four: not the default.)"""
from __future__ import annotations

import numpy as np
import pytest
import ray
import torch

from gan_core.config import TrainConfig
from pipelines.worker import epoch_batches

pytestmark = pytest.mark.integration


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_prefetch_changes_no_batch(local_ray):
    images = np.random.default_rng(0).standard_normal((600, 1, 8, 8)).astype(np.float32)
    ds = ray.data.from_numpy(images).rename_columns({"data": "x"}).materialize()

    def epoch(prefetch: int) -> list[torch.Tensor]:
        t = TrainConfig(batch_size=32, prefetch_batches=prefetch)
        return [b["x"] for b in epoch_batches(ds.iterator(), t, pin_memory=False, shuffle_seed=3)]

    plain = epoch(0)
    assert TrainConfig().prefetch_batches > 0
    assert len(plain) == 600 // 32 and plain[0].shape == (32, 1, 8, 8)
    for _ in range(4):  # a timing-dependent order would show within a few epochs
        prefetched = epoch(TrainConfig().prefetch_batches)
        assert all(torch.equal(a, b) for a, b in zip(plain, prefetched, strict=True))
    # the local shuffle is on: equality is not the data's own order
    assert not torch.equal(torch.cat(plain), torch.from_numpy(images[:len(plain) * 32]))
