"""InfoGAN's code through the real pipeline: 2 DDP workers train with Q's loss logged, the
registered generator takes z with the one-hot code at its end, and generate.py draws one code
or a row per code."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import REPO, explain

pytestmark = pytest.mark.integration

NOISE, CODES = 16, 4
SMALL = ["--config", str(REPO / "tune_configs" / "dcgan_digits.yaml"), "--set", "train.epochs=2",
         "--set", "model.g_width=16", "--set", "model.d_width=16", "--set", f"model.z_dim={NOISE}",
         "--set", f"model.info_codes={CODES}", "--set", "train.log_every_steps=5",
         "--set", "train.lr_g=1e-3", "--set", "train.lr_d=1e-3",  # Q learns within the 28 steps
         "--set", "mlflow.registered_model=digits-info"]


def test_info_run_registers_a_generator_whose_latent_ends_with_the_code(workspace):
    proc = workspace.train(*SMALL, "--name", "info-it")
    assert proc.returncode == 0, explain(proc)
    client, run = workspace.only_run()
    info = [m.value for m in client.get_metric_history(run.info.run_id, "info_loss")]
    # Q's cross-entropy, logged every 5 steps: from chance (ln 4 = 1.39) down as Q learns
    assert len(info) == 5 and info[0] > 0.9 and info[-1] < 0.8 * info[0]

    model = workspace.pyfunc("models:/digits-info@champion")
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(5, NOISE, generator=gen)
    codes = np.zeros((5, CODES), np.float32)
    codes[:, 2] = 1
    direct = model.predict(np.concatenate([noise.numpy(), codes], 1))
    assert direct.shape == (5, 1, 16, 16)
    codes[:, 2], codes[:, 1] = 0, 1
    assert not np.allclose(direct, model.predict(np.concatenate([noise.numpy(), codes], 1)))

    # generate.py draws the seed's noise with the code asked for: the pyfunc model's output
    two = workspace.run("generate.py", "--model", "models:/digits-info@champion", "--code", "2",
                        "--n", "5", "--npy", "s.npy")
    assert two.returncode == 0, explain(two)
    assert "code 2" in two.stdout
    assert np.allclose(np.load(workspace.path / "s.npy"), (direct + 1) / 2, atol=1e-6)

    grid = workspace.run("generate.py", "--model", "models:/digits-info@champion", "--n", "12",
                         "--out", "grid.png")
    assert grid.returncode == 0, explain(grid)
    assert "3 a row for each of 4 codes" in grid.stdout
    bad = workspace.run("generate.py", "--model", "models:/digits-info@champion", "--code", "4")
    assert bad.returncode == 2 and "draws codes 0..3" in bad.stderr
    label = workspace.run("generate.py", "--model", "models:/digits-info@champion", "--label", "1")
    assert label.returncode == 2 and "not class-conditional" in label.stderr
