"""Input pipeline: the images/s Ray Data delivers to each training worker (iter_torch_batches with
the worker loop's arguments, no training) beside the images/s a worker consumes when training,
for MNIST IDX, Parquet and an image folder.

    .venv/bin/python bench/input_pipeline.py [--mnist ../shared/data/mnist] [--workers 2]
        [--epochs 3] [--config dcgan_mnist] [--consumption IMAGES_PER_S]

The Parquet file (PNG bytes + labels) and the image folder (one PNG per image, a subfolder per
class) are written from the MNIST files in a temporary directory. Each source goes through the
project's own loader (gan_core.data.load_source) and pipelines/datasets.py's to_ray_dataset, as
train.py does; `load s` is that driver-side time (read, decode, preprocess, materialise). Delivery
is per worker, the median of `--epochs` epochs after a first one (shown apart: it starts the
stream); `no shuffle` drops the local shuffle buffer. Consumption is a worker's training rate
(bench/throughput.py's plain loop on the config: the most a worker can consume with the same
model, batch and thread), unless given. Target: delivery >= 5x consumption."""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from gan_core.config import from_dict, load_config  # noqa: E402
from gan_core.data import load_source  # noqa: E402
from step_profile import _data_only  # noqa: E402
from throughput import MNIST, plain_loop  # noqa: E402


def write_parquet(x: np.ndarray, y: np.ndarray, path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"image": [_png(a) for a in x], "label": y}), path)
    return path


def write_folder(x: np.ndarray, y: np.ndarray, root: Path) -> Path:
    for i, (a, label) in enumerate(zip(x, y)):
        d = root / str(label)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:05d}.png").write_bytes(_png(a))
    return root


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((a[0] * 255).round().astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def delivery_loop(config: dict) -> None:
    """Per epoch, the images/s this worker's shard delivers, shuffled as in training and not."""
    import ray.train

    cfg = from_dict(config["cfg"], check_paths=False)
    shard, t = ray.train.get_dataset_shard("train"), cfg.train
    rates = {"shuffled": [_data_only(shard, t, cfg.seed + e) for e in range(t.epochs)]}
    rates["no shuffle"] = []
    for _ in range(t.epochs):
        t0, n = time.perf_counter(), 0
        for batch in shard.iter_torch_batches(batch_size=t.batch_size, drop_last=True):
            n += len(batch["x"])
        rates["no shuffle"].append(n / (time.perf_counter() - t0))
    with tempfile.TemporaryDirectory() as tmp:  # Ray Train keeps results only with a checkpoint
        Path(tmp, "rates.json").write_text(json.dumps(rates))
        rank0 = ray.train.get_context().get_world_rank() == 0
        ray.train.report({}, checkpoint=ray.train.Checkpoint.from_directory(tmp) if rank0 else None)


def deliver(cfg, workers: int) -> tuple[dict, float]:
    """(rank 0's per-epoch rates, driver seconds to load and materialise the dataset)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from pipelines.datasets import to_ray_dataset

    t0 = time.perf_counter()
    dataset = to_ray_dataset(load_source(cfg.data, seed=cfg.seed), cfg)
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        result = TorchTrainer(
            delivery_loop, train_loop_config={"cfg": cfg.to_dict()},
            scaling_config=ray.train.ScalingConfig(num_workers=workers,
                                                   resources_per_worker={"CPU": cfg.ray.cpus_per_worker}),
            run_config=ray.train.RunConfig(name="delivery", storage_path=tmp),
            datasets={"train": dataset}).fit()
        with result.checkpoint.as_directory() as d:
            return json.loads(Path(d, "rates.json").read_text()), load_s


def main() -> None:
    import ray

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", default=str(MNIST))
    p.add_argument("--config", default="dcgan_mnist", help="tune_configs name: model, batch, image size")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3, help="delivery epochs per source (first one apart)")
    p.add_argument("--consumption", type=float, help="a worker's training images/s (default: measured)")
    args = p.parse_args()
    config = str(REPO / "tune_configs" / f"{args.config}.yaml")
    base = load_config(config, [f"data.path={args.mnist}", "train.threads_per_worker=1",
                                f"train.epochs={args.epochs + 1}"])
    consumption = args.consumption or plain_loop(base, 60)[0]  # its images/s
    mnist = load_source(base.data)
    ray.init(runtime_env={"env_vars": {"PYTHONPATH": f"{REPO}:{REPO / 'bench'}"}})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"MNIST IDX": ("mnist", args.mnist),
                   "Parquet (PNG bytes)": ("parquet", write_parquet(mnist.x, mnist.y, Path(tmp, "mnist.parquet"))),
                   "image folder (PNG)": ("image_folder", write_folder(mnist.x, mnist.y, Path(tmp, "folder")))}
        for label, (source, path) in sources.items():
            cfg = load_config(config, [f"data.source={source}", f"data.path={path}",
                                       f"train.epochs={args.epochs + 1}", "train.threads_per_worker=1"])
            rates, load_s = deliver(cfg, args.workers)
            rows.append((label, load_s, rates["shuffled"][0], statistics.median(rates["shuffled"][1:]),
                         statistics.median(rates["no shuffle"][1:])))
    print(f"\n{len(mnist.x):,} MNIST images, {base.data.image_size}px, batch {base.train.batch_size}/worker, "
          f"{args.workers} workers x {base.ray.cpus_per_worker:g} CPU; a worker consumes {consumption:.0f} "
          f"images/s training {args.config} (1 thread)")
    print(f"{'source':22} {'load s':>7} {'1st epoch':>10} {'images/s':>9} {'no shuffle':>11} {'vs consumption':>15}")
    for label, load_s, first, rate, plain in rows:
        print(f"{label:22} {load_s:7.1f} {first:10.0f} {rate:9.0f} {plain:11.0f} {rate / consumption:15.1f}")
    print("images/s: per worker, as the training loop iterates (local shuffle buffer); target >= 5x")


if __name__ == "__main__":
    main()
