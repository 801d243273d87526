"""A class-conditional GAN through the real pipeline: labels sharded by Ray Data to 2 DDP
workers, the generator registered with a (z, label) input schema, and generate.py drawing a class
or a grid with one row per class."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_core.models.layers import truncate
from tests.conftest import REPO, explain

pytestmark = pytest.mark.integration

SMALL = ["--config", str(REPO / "tune_configs" / "cgan_digits.yaml"), "--set", "train.epochs=2",
         "--set", "train.sample_every_epochs=1", "--set", "train.checkpoint_every_epochs=1",
         "--set", "model.g_width=16", "--set", "model.d_width=16", "--set", "model.z_dim=16",
         "--set", "train.log_every_steps=5"]


def test_conditional_run_registers_a_generator_that_takes_labels(workspace):
    proc = workspace.train(*SMALL, "--name", "cgan-it")
    assert proc.returncode == 0, explain(proc)
    client, run = workspace.only_run()
    assert run.info.status == "FINISHED"
    assert run.data.params["model.num_classes"] == "10"
    # 1,797 digits / (2 workers x 64) = 14 steps an epoch, 28 in all, logged every 5
    steps = [h.step for h in client.get_metric_history(run.info.run_id, "d_loss")]
    assert steps == [5, 10, 15, 20, 25]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "samples")] == \
        ["samples/epoch_00001.png", "samples/epoch_00002.png"]

    version = client.get_model_version_by_alias("digits-cgan", "champion")
    model = workspace.pyfunc("models:/digits-cgan@champion")
    inputs = {s.name: s for s in model.metadata.get_input_schema().inputs}
    assert set(inputs) == {"z", "label"}
    z = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    threes = model.predict({"z": z, "label": np.full(4, 3, np.int64)})
    sevens = model.predict({"z": z, "label": np.full(4, 7, np.int64)})
    assert threes.shape == (4, 1, 16, 16) and not np.allclose(threes, sevens)
    with pytest.raises(Exception, match="labels must lie in"):
        model.predict({"z": z, "label": np.full(4, 10, np.int64)})

    one = workspace.run("generate.py", "--model", "models:/digits-cgan@champion", "--label", "7",
                        "--n", "5", "--npy", "s.npy")
    assert one.returncode == 0, explain(one)
    assert "class 7" in one.stdout
    drawn = np.load(workspace.path / "s.npy")
    assert drawn.shape == (5, 1, 16, 16)
    # generate.py feeds the pyfunc model: the same seed-0 latents give the same sevens
    z5 = torch.randn(5, 16, generator=torch.Generator().manual_seed(0)).numpy()
    direct = model.predict({"z": z5, "label": np.full(5, 7, np.int64)})
    assert np.allclose(drawn, (direct + 1) / 2, atol=1e-6)
    # --truncation: the same draw with the entries beyond +-0.5 redrawn from the same stream
    cut = workspace.run("generate.py", "--model", "models:/digits-cgan@champion", "--label", "7",
                        "--n", "5", "--truncation", "0.5", "--npy", "t.npy")
    assert cut.returncode == 0, explain(cut)
    gen = torch.Generator().manual_seed(0)
    z_cut = truncate(torch.randn(5, 16, generator=gen), 0.5, gen).numpy()
    direct_cut = model.predict({"z": z_cut, "label": np.full(5, 7, np.int64)})
    assert np.allclose(np.load(workspace.path / "t.npy"), (direct_cut + 1) / 2, atol=1e-6)
    assert not np.allclose(direct_cut, direct, atol=1e-3)
    zero = workspace.run("generate.py", "--model", "models:/digits-cgan@champion", "--truncation", "0")
    assert zero.returncode == 2 and "--truncation must be positive, got 0.0" in zero.stderr

    grid = workspace.run("generate.py", "--model", f"models:/digits-cgan/{version.version}",
                         "--n", "30", "--out", "grid.png")
    assert grid.returncode == 0, explain(grid)
    assert "3 a row for each of 10 classes" in grid.stdout
    from PIL import Image

    w, h = Image.open(workspace.path / "grid.png").size
    assert h > 3 * w  # 10 rows of 3 tiles

    bad = workspace.run("generate.py", "--model", "models:/digits-cgan@champion", "--label", "10")
    assert bad.returncode == 2 and "draws classes 0..9" in bad.stderr
    code = workspace.run("generate.py", "--model", "models:/digits-cgan@champion", "--code", "1")
    assert code.returncode == 2 and "has no InfoGAN code" in code.stderr
