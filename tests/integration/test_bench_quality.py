"""bench/quality.py refuses a bad --suites or --set before any training: each suite's --set is
checked against the configs that suite trains, not only the defaults. Its tables print the papers'
published rows in our units beside ours."""
from __future__ import annotations

import importlib.util
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


def _quality_module():
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_figures_are_in_our_units_and_ranges():
    """Percentages of high-quality samples written as fractions, modes within each suite's count."""
    q = _quality_module()
    assert set(q.PUBLISHED) == {"ring", "grid", "stacked"}
    for suite, rows in q.PUBLISHED.items():
        for name, figures in rows:
            assert set(figures) <= set(q.TARGETS[suite]), name
            assert 0 < figures["modes"] <= q.TARGETS[suite]["modes"], name
            assert 0 <= figures.get("high_quality", 0) <= 1 and figures.get("kl", 0) >= 0, name


def test_table_prints_ours_beside_the_papers_and_leaves_their_missing_figures_blank(capsys):
    q = _quality_module()
    q.print_table("ring", [("GAN (ours), seed 0", {"modes": 8, "high_quality": 0.99, "kl": 0.01})])
    lines = capsys.readouterr().out.splitlines()
    header = lines[2]
    kl = slice(header.index(" kl") - 11, header.index(" kl") + 3)  # the right-aligned column
    rows = {line[:34].strip(): line for line in lines[3:]}  # the name column
    assert rows["GAN (ours), seed 0"][kl].strip() == "0.01"
    assert rows["PacGAN4 (PacGAN Table 1)"][kl].strip() == "0.07"
    assert rows["VEEGAN (VEEGAN Table 1)"][kl].strip() == ""  # VEEGAN's Table 1 has no KL
    assert rows["VEEGAN (VEEGAN Table 1)"].split()[-2:] == ["0.529", "8"]
    assert rows["target"][kl].strip() == "0.02"
