"""Bad input fails fast with one clear error naming the key or file, before Ray starts."""
from __future__ import annotations

import gzip
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import MNIST_DIR, REPO


def _fails_before_ray(workspace, *args: str, expect: list[str]) -> None:
    start = time.monotonic()
    proc = workspace.train(*args)
    assert proc.returncode == 2, proc.stderr
    for text in expect:
        assert text in proc.stderr, (text, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "Ray instance" not in proc.stdout + proc.stderr  # no cluster was started
    assert time.monotonic() - start < 60
    assert not (workspace.path / "mlflow.db").exists()  # nothing written


@pytest.mark.parametrize("override, expect", [
    ("model.family=stylegan9", ["model.family", "stylegan9", "dcgan"]),
    ("loss.name=wasserstein", ["loss.name", "wasserstein", "nonsaturating"]),
    ("data.source=cifar", ["data.source", "cifar"]),
    ("train.batch_size=lots", ["train.batch_size", "integer"]),
    ("train.lrg=0.1", ["train.lrg", "train.lr_g"]),
    ("ray.use_gpu=perhaps", ["ray.use_gpu"]),
    ("train.batch_size=5000", ["train.batch_size", "samples each"]),
    ("model.num_classes=5", ["model.num_classes", "labels run from 0 to 9"]),
])
def test_bad_config_names_the_key(workspace, override, expect):
    _fails_before_ray(workspace, "--set", override, expect=expect)


def test_missing_data_path(workspace):
    _fails_before_ray(workspace, "--set", "data.source=mnist", "--set", "data.image_size=28",
                      "--set", "data.path=/no/such/mnist", expect=["data.path", "/no/such/mnist"])


def test_corrupt_idx_file_names_the_file(workspace):
    good = gzip.decompress((MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    bad_dir = workspace.path / "mnist"
    bad_dir.mkdir()
    (bad_dir / "t10k-images-idx3-ubyte").write_bytes(good[:5000])  # truncated
    _fails_before_ray(workspace, "--config", str(REPO / "tune_configs" / "dcgan_mnist.yaml"), "--set",
                      f"data.path={bad_dir}", expect=["t10k-images-idx3-ubyte"])


def test_inconsistent_image_sizes_name_the_file(workspace):
    folder = workspace.path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (20, 12), dtype=np.uint8)).save(folder / "odd.png")
    _fails_before_ray(workspace, "--set", "data.source=image_folder", "--set",
                      f"data.path={folder}", expect=["odd.png"])


def test_unwritable_checkpoint_storage_fails_before_ray(workspace):
    blocker = workspace.path / "a-file"
    blocker.write_text("checkpoints cannot go under a file")
    start = time.monotonic()
    proc = workspace.run("train.py", "--set", f"ray.storage_path={blocker / 'ckpts'}")
    assert proc.returncode == 2, proc.stderr
    assert "ray.storage_path" in proc.stderr and str(blocker / "ckpts") in proc.stderr
    assert "Traceback" not in proc.stderr and "Ray instance" not in proc.stdout + proc.stderr
    assert time.monotonic() - start < 60 and not (workspace.path / "mlflow.db").exists()
    assert blocker.read_text() == "checkpoints cannot go under a file"


def test_skipped_images_are_counted_in_mlflow(workspace):
    """data.on_bad_sample=skip: the run trains on the good images and records the bad ones."""
    folder = workspace.path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(300):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    (folder / "broken.png").write_bytes(rng.bytes(200))
    Image.fromarray(rng.integers(0, 255, (20, 12), dtype=np.uint8)).save(folder / "odd.png")
    proc = workspace.train("--set", "data.source=image_folder", "--set", f"data.path={folder}",
                           "--set", "data.on_bad_sample=skip", "--set", "train.epochs=1",
                           "--set", "model.g_width=8", "--set", "model.d_width=8",
                           "--name", "skips")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped: " in proc.stdout and "broken.png" in proc.stdout
    client, run = workspace.only_run()
    assert run.data.metrics["data_skipped"] == 2
    assert "300 images" in run.data.tags["data"]
    listed = open(client.download_artifacts(run.info.run_id, "data/skipped.txt", str(workspace.path))).read()
    assert "broken.png" in listed and "odd.png" in listed and listed.count("\n") == 2
