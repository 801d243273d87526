"""ProGAN through the real pipeline: 2 Ray Train DDP workers grow 4x4 -> 8x8 -> 16x16 on the
bundled digits; MLflow gets a sample grid and SWD at the end of each resolution, the generator is
registered and generate.py samples it at the final resolution."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gan_core.config import load_config
from gan_core.data import load_source
from gan_core.data.transforms import preprocess_images
from gan_core.metrics import evaluate
from tests.conftest import REPO, explain

pytestmark = pytest.mark.integration

SMALL = ["--config", str(REPO / "tune_configs" / "progan_mnist.yaml"),
         "--set", "data.source=sklearn_digits", "--set", "data.pad_to=0", "--set", "data.image_size=16",
         "--set", "model.g_width=4", "--set", "model.d_width=4", "--set", "train.batch_size=32",
         "--set", "progressive.fade_images=256", "--set", "progressive.stable_images=256",
         "--set", "train.epochs=1", "--set", "train.log_every_steps=2",
         "--set", "eval.num_samples=200", "--set", "eval.num_real=200", "--set", "eval.every_images=0"]


def test_progan_grows_logs_each_resolution_and_registers(workspace):
    proc = workspace.train(*SMALL, "--name", "progan-it")
    assert proc.returncode == 0, explain(proc)
    client, run = workspace.only_run()
    assert run.info.status == "FINISHED"
    history = {k: [(h.step, h.value) for h in client.get_metric_history(run.info.run_id, k)]
               for k in ("res4/swd", "res8/swd", "res16/swd", "resolution", "alpha")}
    # 64 images a step: 4x4 for 4 steps, 8x8 fades in over 4 and is stable for 4, then 16x16;
    # 1,797 digits give 28 steps, and the last resolution ends with the run
    assert [s for s, _ in history["res4/swd"]] == [4]
    assert [s for s, _ in history["res8/swd"]] == [12]
    assert [s for s, _ in history["res16/swd"]] == [28]
    assert all(math.isfinite(v) and v > 0 for k in ("res4/swd", "res8/swd", "res16/swd")
               for _, v in history[k])
    # the real-vs-real floor, logged once with the run's evaluation: 200 real images (the
    # next ones of the reference's seeded order) against the 200-image reference
    (floor,) = client.get_metric_history(run.info.run_id, "floor/swd")
    cfg = load_config(SMALL[1], list(SMALL[3::2]))
    data = load_source(cfg.data, seed=cfg.seed)
    order = np.random.default_rng(cfg.seed).permutation(len(data.x))
    ref, other = (preprocess_images(data.x[i], 16, 1) for i in (order[:200], order[200:400]))
    assert floor.value == pytest.approx(evaluate("swd", other, real=ref)["swd"], rel=1e-6)
    assert 0 < floor.value < run.data.metrics["swd"]
    assert history["resolution"][:6] == [(2, 4.0), (4, 8.0), (6, 8.0), (8, 8.0), (10, 8.0), (12, 16.0)]
    assert history["alpha"][1:4] == [(4, 0.0), (6, 0.5), (8, 1.0)]
    samples = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    assert samples == ["samples/epoch_00001.png", "samples/res_0004.png", "samples/res_0008.png",
                       "samples/res_0016.png"]
    assert client.get_model_version_by_alias("mnist-progan", "champion").run_id == run.info.run_id

    out = workspace.run("generate.py", "--model", "models:/mnist-progan@champion", "--n", "8",
                        "--npy", "s.npy")
    assert out.returncode == 0, explain(out)
    drawn = np.load(workspace.path / "s.npy")
    assert drawn.shape == (8, 1, 16, 16) and np.isfinite(drawn).all()
    # the served generator is at the final stage: not made of 2x2 blocks like an 8x8 output
    assert not np.allclose(drawn[:, :, ::2, ::2], drawn[:, :, 1::2, 1::2])
