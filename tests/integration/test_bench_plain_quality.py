"""bench/plain_quality.py on Stacked MNIST: the table's floor row is the modes metric on the
real images the run holds out, and an untrained G's rows read far worse than that floor."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from gan_core.config import load_config
from gan_core.data import load_source
from gan_core.data.mnist_idx import load_mnist
from gan_core.data.transforms import preprocess_images
from gan_core.evaluation import quality_metrics, real_split
from gan_core.evaluator_training import train_classifier
from tests.conftest import MNIST_DIR, REPO

pytestmark = pytest.mark.integration
CONFIG = REPO / "tune_configs" / "dcgan_stacked_mnist.yaml"
SETS = ["data.num_samples=4000", "eval.num_samples=1500", "eval.num_real=500",
        "model.g_width=8", "model.d_width=8", f"data.path={MNIST_DIR}"]


def test_stacked_floor_row_is_the_modes_of_the_held_out_real_images(tmp_path):
    digits = load_mnist(str(MNIST_DIR))
    net, _ = train_classifier(digits.x[:3000], digits.y[:3000], epochs=1, augment=False, log=None)
    torch.save(net.state_dict(), tmp_path / "evaluator.pt")

    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "plain_quality.py"), "--config", str(CONFIG),
         "--evaluator", str(tmp_path / "evaluator.pt"), "--images", "256", "--eval-every", "128",
         *[a for s in SETS for a in ("--set", s)]],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[1].split()[-4:] == ["modes", "KL", "kl_digits", "kl_coupling"]
    assert lines[2].split()[0] == "floor"
    floor = [float(v) for v in lines[2].split()[1:]]
    rows = [[float(v.replace(",", "")) for v in line.split()] for line in lines[3:]]
    assert [r[0] for r in rows] == [128, 256]

    cfg = load_config(str(CONFIG), SETS)
    data = load_source(cfg.data, seed=cfg.seed)
    _, held_out = real_split(len(data.x), 500, 1500, cfg.seed)
    real = preprocess_images(data.x[held_out], cfg.data.image_size, cfg.data.channels)
    net.eval()
    want = quality_metrics("stacked_mnist", real, ("modes",), net=net)
    assert floor == pytest.approx([want["modes"], want["kl"], want["kl_digits"], want["kl_coupling"]],
                                  abs=5e-5)
    # 1,500 uniform draws over 1,000 modes hit about 777; a one-epoch evaluator misreads a few
    assert 650 < floor[0] <= 1000 and floor[1] < 0.6
    for images, *_, modes, kl, kl_digits, kl_coupling in rows:
        assert modes < floor[0] / 2 and kl > floor[1] + 1
        assert kl == pytest.approx(kl_digits + kl_coupling, abs=2e-4)
    assert np.isfinite(rows[-1][1:]).all()
