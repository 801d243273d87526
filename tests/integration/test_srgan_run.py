"""SRGAN through the real pipeline: high-res crops of the bundled photographs sharded by Ray Data
to 2 DDP workers, the SRResNet phase switching to the adversarial one at the configured image
count, PSNR/SSIM beside bicubic in MLflow, a registered model taking low-res images of any size,
and generate.py upsampling a user's image file."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, explain

pytestmark = pytest.mark.integration

SMALL = ["--config", str(REPO / "tune_configs" / "srgan_sample_images.yaml"),
         "--set", "data.num_samples=128", "--set", "data.holdout_crops=32",
         "--set", "train.epochs=2", "--set", "train.pretrain_images=128",
         "--set", "train.sample_every_epochs=1", "--set", "train.checkpoint_every_epochs=1",
         "--set", "model.sr_blocks=1", "--set", "model.g_width=8", "--set", "model.d_width=4",
         "--set", "train.log_every_steps=2"]


def test_srgan_run_registers_a_model_that_upsamples_images(workspace):
    proc = workspace.train(*SMALL, "--name", "srgan-it")
    assert proc.returncode == 0, explain(proc)
    assert "--input low.png --out high.png" in proc.stdout
    client, run = workspace.only_run()
    assert run.info.status == "FINISHED"
    # 128 crops / (2 workers x 16) = 4 steps an epoch; the first epoch (128 images) is SRResNet
    history = lambda key: [m.step for m in client.get_metric_history(run.info.run_id, key)]
    assert history("content") == [2, 4, 6, 8]
    assert history("d_loss") == [6, 8] and history("g_adv") == [6, 8]
    for key in ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic"):
        assert history(key) == [4, 8], key
        assert math.isfinite(run.data.metrics[key])
    assert 15 < run.data.metrics["psnr_bicubic"] < 45 and 0 < run.data.metrics["ssim_bicubic"] < 1
    figures = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    assert figures == ["samples/epoch_00001.png", "samples/epoch_00002.png"]
    local = client.download_artifacts(run.info.run_id, figures[-1], str(workspace.path))
    w, h = Image.open(local).size
    assert abs(w / h - 4 / 8) < 0.05  # 8 rows of LR | bicubic | SR | HR

    model = workspace.pyfunc("models:/photos-srgan@champion")
    (spec,) = model.metadata.get_input_schema().inputs
    assert tuple(spec.shape) == (-1, 3, -1, -1)
    lr = np.random.default_rng(0).uniform(-1, 1, (2, 3, 10, 13)).astype(np.float32)
    assert model.predict(lr).shape == (2, 3, 40, 52)

    from sklearn.datasets import load_sample_images

    flower = load_sample_images().images[1][100:137, 200:250]
    Image.fromarray(flower).save(workspace.path / "low.png")
    out = workspace.run("generate.py", "--model", "models:/photos-srgan@champion",
                        "--input", "low.png", "--out", "high.png")
    assert out.returncode == 0, explain(out)
    high = np.asarray(Image.open(workspace.path / "high.png"))
    assert high.shape == (148, 200, 3)
    direct = model.predict((flower.transpose(2, 0, 1)[None] / 127.5 - 1).astype(np.float32))
    assert np.abs(high.transpose(2, 0, 1) / 255.0 - (direct[0] + 1) / 2).max() <= 1 / 255 + 1e-6
    tiled = workspace.run("generate.py", "--model", "models:/photos-srgan@champion",
                          "--input", "low.png", "--out", "tiled.png", "--tile", "24", "--overlap", "6")
    assert tiled.returncode == 0, explain(tiled)
    assert np.asarray(Image.open(workspace.path / "tiled.png")).shape == (148, 200, 3)

    Image.fromarray(flower[..., 0]).save(workspace.path / "gray.png")
    gray = workspace.run("generate.py", "--model", "models:/photos-srgan@champion",
                         "--input", "gray.png", "--out", "x.png")
    assert gray.returncode == 2 and "gray.png is grayscale" in gray.stderr
    (workspace.path / "bad.png").write_bytes(b"not an image")
    bad = workspace.run("generate.py", "--model", "models:/photos-srgan@champion",
                        "--input", "bad.png", "--out", "x.png")
    assert bad.returncode == 2 and "bad.png: unreadable image" in bad.stderr
    nosr = workspace.run("generate.py", "--model", "models:/photos-srgan@champion", "--n", "4")
    assert nosr.returncode == 2 and "needs --input" in nosr.stderr
    refused = workspace.run("evaluate.py", "--model", "models:/photos-srgan@champion")
    assert refused.returncode == 2 and "is a super-resolution model" in refused.stderr
