"""Text-to-image GAN-CLS through the real pipeline: captions tokenized and sharded by Ray Data to
2 DDP workers, rank 0's evaluation drawing for held captions (attribute correlation, D's
mismatched-pair accuracy), the generator registered with a (z, text) input schema, and
generate.py drawing for captions given on the command line."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import REPO, explain

pytestmark = pytest.mark.integration

SMALL = ["--config", str(REPO / "tune_configs" / "gancls_digits.yaml"), "--set", "train.epochs=2",
         "--set", "train.sample_every_epochs=1", "--set", "train.checkpoint_every_epochs=1",
         "--set", "model.g_width=16", "--set", "model.d_width=16", "--set", "model.z_dim=16",
         "--set", "model.text_dim=32", "--set", "eval.num_samples=200",
         "--set", "train.log_every_steps=5"]


def test_text_run_registers_a_generator_that_takes_captions(workspace):
    proc = workspace.train(*SMALL, "--name", "gancls-it")
    assert proc.returncode == 0, explain(proc)
    client, run = workspace.only_run()
    assert run.info.status == "FINISHED"
    assert run.data.params["model.text_max_len"] == "72"
    metrics = run.data.metrics
    # the matching-aware D term is trained and reported: d_wrong beside d_real and d_fake
    assert {"d_real", "d_fake", "d_wrong"} <= set(metrics)
    for name in ("d_mismatch_acc", "d_wrong_fake"):
        assert 0.0 <= metrics[name] <= 1.0
    # evaluated at each of the 2 epochs; captions name thickness on some samples and not others
    history = client.get_metric_history(run.info.run_id, "attr_corr_thickness")
    assert len(history) == 2 and all(-1 <= h.value <= 1 for h in history)
    arts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "samples"))
    assert arts == ["samples/epoch_00001.png", "samples/epoch_00001.txt",
                    "samples/epoch_00002.png", "samples/epoch_00002.txt"]
    rows = open(client.download_artifacts(run.info.run_id, "samples/epoch_00002.txt", str(workspace.path))).read()
    assert rows.count("\n") == 8 and rows.startswith("row 1: ")

    model = workspace.pyfunc("models:/digits-gancls@champion")
    inputs = {s.name: s for s in model.metadata.get_input_schema().inputs}
    assert set(inputs) == {"z", "text"}
    z = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    threes = model.predict({"z": z, "text": np.array(["a thick three"] * 4)})
    sevens = model.predict({"z": z, "text": np.array(["a thin seven"] * 4)})
    assert threes.shape == (4, 1, 16, 16) and not np.allclose(threes, sevens)
    with pytest.raises(Exception, match="outside the vocabulary"):
        model.predict({"z": z, "text": np.array(["a seven!"] * 4)})

    two = workspace.run("generate.py", "--model", "models:/digits-gancls@champion", "--n", "6",
                        "--text", "a thick three", "--text", "a thin seven", "--npy", "s.npy")
    assert two.returncode == 0, explain(two)
    assert "3 a row for each of 2 captions" in two.stdout
    drawn = np.load(workspace.path / "s.npy")
    # generate.py gives the pyfunc model's output: the same seed-0 latents, the same captions
    z6 = torch.randn(6, 16, generator=torch.Generator().manual_seed(0)).numpy()
    direct = model.predict({"z": z6, "text": np.array(["a thick three"] * 3 + ["a thin seven"] * 3)})
    assert np.allclose(drawn, (direct + 1) / 2, atol=1e-6)

    none = workspace.run("generate.py", "--model", "models:/digits-gancls@champion")
    assert none.returncode == 2 and "give it a caption" in none.stderr
    long = workspace.run("generate.py", "--model", "models:/digits-gancls@champion", "--text", "seven " * 20)
    assert long.returncode == 2 and "more than max_len=72" in long.stderr

    # evaluate.py draws for real captions; the floor is the real images against their own captions
    ev = workspace.run("evaluate.py", "--model", "models:/digits-gancls@champion",
                       "--metrics", "attr_corr", "--n", "400")
    assert ev.returncode == 0, explain(ev)
    row = next(line.split() for line in ev.stdout.splitlines() if line.startswith("attr_corr_thickness"))
    generated, floor = float(row[1]), float(row[2])
    assert -1 <= generated <= 1 and floor > 0.6  # the words were measured on the real images
