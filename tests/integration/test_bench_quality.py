"""bench/quality.py refuses a bad --suites or --set before any training: each suite's --set is
checked against the configs that suite trains, not only the defaults."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def _refusal(*args: str, cwd) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "quality.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and not proc.stdout, (proc.stdout, proc.stderr[-2000:])
    assert not list(cwd.iterdir())  # nothing written
    return proc.stderr.splitlines()[-1]


@pytest.mark.parametrize("args, message", [
    # valid over the defaults; the stacked config's source needs three channels
    (("--suites", "grid,stacked", "--set", "data.channels=1"),
     "dcgan_stacked_mnist.yaml: config key 'data.channels': source 'stacked_mnist' stacks three "
     "digits as RGB; set 3"),
    # valid for the unconditional stacked config, not for its self-conditioned twin
    (("--suites", "stacked", "--set", "data.cluster_channels=false"),
     "selfcond_stacked_mnist.yaml: config key 'model.num_classes': G and D are conditioned on "
     "data.clusters=50 clusters: set 50, got 125000"),
    (("--suites", "ring,mnist", "--set", "model.nope=1"),
     "ring_mlp.yaml: config key 'model.nope': unknown key"),
    (("--suites", "grid,foo"),
     "unknown suite 'foo'; known: ring, grid, mnist, stacked, cgan, gancls, progan, sr"),
    (("--suites", ","), "--suites names no suite"),
])
def test_bad_suites_and_settings_are_refused_before_any_run(tmp_path, args, message):
    assert _refusal(*args, cwd=tmp_path) == f"quality.py: error: {message}"
