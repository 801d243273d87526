"""Quality benchmark: train through the real pipeline, evaluate, and print our rows beside the
published ones and the targets.

    .venv/bin/python bench/quality.py [--suites ring,grid,mnist,stacked,cgan,gancls,progan,sr] [--seeds 3]
        [--epochs-scale 1.0] [--mnist ../shared/data/mnist] [--toy-packs 1,4] [--set key=value ...]

Suites: ring / grid (PacGAN Table 1 protocol: 2,500 samples; modes, % high quality, reverse KL)
with a plain D and a PacGAN4 D (`--toy-packs`); mnist (the unconditional and the self-conditioned
DCGAN: classifier FID, IS, precision and recall on 5,000 samples, `evaluate.py`'s default, beside
the real-vs-real floor, each the mean of 5 draws of halves and samples; at 2,000 IS's splits of
200 read about 2% low, real digits included);
stacked (Stacked MNIST modes and KL over 26,000 samples, PacGAN Table 2 protocol, with the KL's
two parts and the real floor: DCGAN, PacDCGAN2 and the self-conditioned DCGAN); cgan (the
class-conditional DCGAN on MNIST: conditional accuracy and per-class FID); gancls (text-to-image
on MNIST with generated captions: accuracy against the caption's digit, attribute rank
correlations, D's accuracy on mismatched pairs, from the run's final evaluation); progan (ProGAN and
DCGAN on MNIST padded to 32x32 at equal images seen: FID and SWD at the end of each ProGAN
resolution, the first seed only); sr (SRGAN x4 on crops of scikit-learn's photographs: PSNR/SSIM
on held-out crops for bicubic upsampling, the SRResNet phase, and SRGAN continuing from it by
resuming the same run). Each run is
`pipelines/train.py` in a fresh MLflow store; image metrics come from `pipelines/evaluate.py`
with the project's own MNIST evaluator, trained once per invocation. `--set` overrides a config
key in every training run (e.g. `--set loss.diffaugment=translation,cutout`). The ring, grid
and stacked tables print PacGAN's Tables 1-2 and VEEGAN's Tables 1-2 beside ours."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "tune_configs"
sys.path.insert(0, str(REPO))

from gan_core.config import DataConfig, load_config  # noqa: E402


def _published(source: str, keys: tuple[str, ...], *rows) -> list[tuple[str, dict]]:
    return [(f"{name} ({source})", dict(zip(keys, figures))) for name, *figures in rows]


# The papers' tables as their authors publish them in their repositories (fjxmlzn/PacGAN:
# synthetic_data_experiments/results/Table1.png, stacked_MNIST_experiments/results/Table2.png;
# akashgit/VEEGAN: tab.png). Means only: PacGAN's are over 10 trials (standard errors left out).
# Percentages of high-quality samples are written as fractions, as ours are. VEEGAN's Table 1 has
# no KL; PacGAN's Table 2 quotes VEEGAN's Table 2 for its first four rows, then its own runs.
TOY_FIGURES = ("modes", "high_quality", "kl")
# kl = kl_digits (each channel's digit frequencies) + kl_coupling (channels' digits tied together)
STACKED_FIGURES = ("modes", "kl", "kl_digits", "kl_coupling")
PUBLISHED = {
    "ring": [*_published("PacGAN Table 1", TOY_FIGURES, ("GAN", 6.3, 0.982, 0.45),
                         ("ALI", 6.6, 0.976, 0.36), ("PacGAN2", 7.9, 0.956, 0.07),
                         ("PacGAN3", 7.8, 0.977, 0.10), ("PacGAN4", 7.8, 0.959, 0.07)),
             *_published("VEEGAN Table 1", TOY_FIGURES[:2], ("GAN", 1, 0.993), ("ALI", 2.8, 0.0013),
                         ("Unrolled GAN", 7.6, 0.356), ("VEEGAN", 8, 0.529))],
    "grid": [*_published("PacGAN Table 1", TOY_FIGURES, ("GAN", 17.3, 0.948, 0.70),
                         ("ALI", 24.1, 0.957, 0.14), ("PacGAN2", 23.8, 0.913, 0.13),
                         ("PacGAN3", 24.6, 0.942, 0.06), ("PacGAN4", 24.8, 0.936, 0.04)),
             *_published("VEEGAN Table 1", TOY_FIGURES[:2], ("GAN", 3.3, 0.005), ("ALI", 15.8, 0.016),
                         ("Unrolled GAN", 23.6, 0.16), ("VEEGAN", 24.6, 0.40))],
    "stacked": [*_published("VEEGAN Table 2", STACKED_FIGURES[:2], ("DCGAN", 99, 3.4),
                            ("ALI", 16, 5.4), ("Unrolled GAN", 48.7, 4.32), ("VEEGAN", 150, 2.95)),
                *_published("PacGAN Table 2", STACKED_FIGURES[:2], ("DCGAN, PacGAN's run", 78.9, 4.50),
                            ("PacDCGAN2", 1000, 0.06), ("PacDCGAN3", 1000, 0.06),
                            ("PacDCGAN4", 1000, 0.07))],
}
TARGETS = {
    "ring": {"modes": 8, "high_quality": 0.98, "kl": 0.02},
    "grid": {"modes": 25, "high_quality": 0.97, "kl": 0.02},
    "stacked": {"modes": 1000, "kl": 0.05},
    "mnist": {"is": 9.5, "fid": "<= 2x floor"},
    "cgan": {"cond_acc": 0.97},
    "gancls": {"cond_acc": 0.90, "attr_corr_thickness": "> 0"},
    "sr": {"psnr": "> bicubic", "ssim": "> bicubic"},
}
GANCLS_FIGURES = ("cond_acc", "fid", "attr_corr_thickness", "attr_corr_slant", "attr_corr_height",
                  "attr_corr_x_offset", "d_mismatch_acc", "d_wrong_fake")
# the floor at n = 5,000 moves by 20% between splits of the 10k test digits: each figure is a mean
MNIST_DRAWS = 5
SR_CROPS = 3200  # training crops in srgan_sample_images.yaml: images in one epoch


class Store:
    """A throwaway working directory with its own MLflow SQLite store."""

    def __init__(self, path: Path, overrides: list[str]):
        self.path, self.overrides = path, overrides  # --set: for every training run
        self.uri = f"sqlite:///{path / 'mlflow.db'}"
        self.env = {**os.environ, "MLFLOW_TRACKING_URI": self.uri, "RAY_AUTH_MODE": "token"}

    def run(self, script: str, *args: str) -> str:
        proc = subprocess.run([sys.executable, str(REPO / "pipelines" / script), *args],
                              cwd=self.path, env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{script} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
        return proc.stdout

    def final_metrics(self, run_name: str) -> dict:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.uri)
        exp = client.get_experiment_by_name("bench")
        (run,) = client.search_runs([exp.experiment_id], f"tags.`gan.run_name` = '{run_name}'")
        return run.data.metrics


def add_set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key in every training run (repeatable)")


def check_sets(p: argparse.ArgumentParser, sets: list[str],
               runs: tuple[tuple[str, list[str]], ...]) -> None:
    """A misspelt key or bad value fails here, not after the evaluator's training: `sets` over
    each (config, run overrides) given."""
    for config, overrides in runs:
        try:
            load_config(str(CONFIGS / config), [*overrides, *sets])
        except ValueError as e:
            p.error(f"{config}: {e}")


def train(store: Store, config: str, name: str, sets: list[str]) -> dict:
    args = ["--config", str(CONFIGS / config), "--name", name, "--experiment", "bench",
            "--set", f"ray.storage_path={store.path / 'ray'}"]
    for s in [*sets, *store.overrides]:
        args += ["--set", s]
    store.run("train.py", *args)
    return store.final_metrics(name)


def toy_suite(store: Store, toy: str, seeds: int, scale: float, packs: list[int]) -> list[tuple[str, dict]]:
    epochs = max(1, round(20 * scale))
    rows = []
    for pack in packs:
        label = "GAN (ours)" if pack == 1 else f"PacGAN{pack} (ours)"
        runs = [train(store, f"{toy}_mlp.yaml", f"{toy}-p{pack}-s{s}",
                      [f"seed={s}", f"model.pack={pack}", f"train.epochs={epochs}"])
                for s in range(seeds)]
        rows += _seed_rows(label, runs, TOY_FIGURES)
    return rows


def _mean(runs: list[dict], keys) -> dict:
    return {k: statistics.mean(r[k] for r in runs) for k in keys}


def _seed_rows(label: str, runs: list[dict], keys) -> list[tuple[str, dict]]:
    """One row per seed, then their mean (a mean alone hides a collapsed seed)."""
    rows = [(f"{label}, seed {s}", {k: r[k] for k in keys}) for s, r in enumerate(runs)]
    if len(runs) > 1:
        rows.append((f"{label}, mean of {len(runs)} seeds", _mean(runs, keys)))
    return rows


def ensure_evaluator(store: Store, mnist: str) -> str:
    out = store.run("train_evaluator.py", "--data", mnist)
    print(out.strip().splitlines()[-3] if out.strip() else "")
    return "models:/mnist-evaluator@champion"


def evaluate(store: Store, name: str, metrics: str, n: int, data: str, *extra: str) -> dict:
    """evaluate.py on the newest version of registered model `name` (the run just trained,
    whether or not it became the champion); its eval/ figures."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store.uri)
    newest = max(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    store.run("evaluate.py", "--model", f"models:/{name}/{newest.version}", "--metrics", metrics,
              "--n", str(n), "--data", data, *extra)
    return {k[len("eval/"):]: v for k, v in client.get_run(newest.run_id).data.metrics.items()
            if k.startswith("eval/") and k != "eval/draws"}


def image_suite(store: Store, mnist: str, seeds: int, epochs: int, config: str, model: str,
                label: str, metrics: str, n: int, *extra: str) -> list[tuple[str, dict]]:
    """`config` trained on MNIST once per seed, the generator it registers as `model` evaluated
    on n samples against n real images; the real-vs-real floor as a last row."""
    rows = []
    for s in range(seeds):
        train(store, config, f"{Path(config).stem}-s{s}",
              [f"seed={s}", f"train.epochs={epochs}", f"data.path={mnist}"])
        rows.append((f"{label}, seed {s}", evaluate(store, model, metrics, n, mnist, *extra)))
    return _with_floor(rows, f"real data ({n:,} vs {n:,})")


def _with_floor(rows: list[tuple[str, dict]], floor_name: str) -> list[tuple[str, dict]]:
    """The last run's real-data floors (and their sd over evaluate.py's draws) as a row of their own."""
    floor = {k.replace("_real_floor", ""): v for k, v in rows[-1][1].items() if "_real_floor" in k}
    rows = rows + [(floor_name, floor)]
    return [(n, {k: v for k, v in r.items() if "_real_floor" not in k}) for n, r in rows]


# (label, config, registered model, D packing): PacGAN's table compares the unconditional DCGAN
# with and without packing; the self-conditioned G builds in one digit per channel
STACKED_RUNS = (("DCGAN (ours)", "dcgan_stacked_mnist.yaml", "stacked-mnist-dcgan", 1),
                ("PacDCGAN2 (ours)", "dcgan_stacked_mnist.yaml", "stacked-mnist-dcgan", 2),
                ("self-conditioned DCGAN (ours)", "selfcond_stacked_mnist.yaml",
                 "stacked-mnist-selfcond", 1))


# the configs each suite's runs train, to check --set against before any run
SUITE_CONFIGS = {"ring": ("ring_mlp.yaml",), "grid": ("grid_mlp.yaml",),
                 "mnist": ("dcgan_mnist.yaml", "selfcond_mnist.yaml"),
                 "stacked": tuple(dict.fromkeys(config for _, config, _, _ in STACKED_RUNS)),
                 "cgan": ("cgan_mnist.yaml",), "gancls": ("gancls_mnist.yaml",),
                 "progan": ("progan_mnist.yaml", "dcgan_mnist.yaml"), "sr": ("srgan_sample_images.yaml",)}
MNIST_SUITES = {"mnist", "stacked", "cgan", "gancls", "progan"}  # need --mnist and the evaluator


def stacked_suite(store: Store, mnist: str, seeds: int, scale: float) -> list[tuple[str, dict]]:
    epochs = max(1, round(10 * scale))
    rows = []
    for label, config, model, pack in STACKED_RUNS:
        runs = []
        for s in range(seeds):
            train(store, config, f"{Path(config).stem}-p{pack}-s{s}",
                  [f"seed={s}", f"model.pack={pack}", f"train.epochs={epochs}",
                   f"data.path={mnist}", "data.num_samples=60000"])
            runs.append(evaluate(store, model, "modes", 26000, mnist))
        rows += _seed_rows(label, runs, STACKED_FIGURES)
    floor = {k: runs[-1][f"{k}_real_floor"] for k in STACKED_FIGURES}
    return rows + [("real data (26,000 vs 26,000)", floor)]


def gancls_suite(store: Store, mnist: str, seeds: int, epochs: int) -> list[tuple[str, dict]]:
    rows = []
    for s in range(seeds):
        final = train(store, "gancls_mnist.yaml", f"gancls-s{s}",
                      [f"seed={s}", f"train.epochs={epochs}", f"data.path={mnist}"])
        rows.append((f"GAN-CLS (ours), seed {s}", {k: final[k] for k in GANCLS_FIGURES}))
    return rows


def progan_suite(store: Store, mnist: str, scale: float) -> list[tuple[str, dict]]:
    """ProGAN (progan_mnist.yaml, phases of 6,000 images x scale) and DCGAN (dcgan_mnist.yaml) on
    the same 32x32 data, batch and image count, both evaluated every phase length (so at the
    same steps: global batch 64 in both). Per ProGAN resolution: its figures against reals
    brought to that resolution (res<N>/...), against the 32x32 reals, and DCGAN's at that point."""
    import math

    from mlflow.tracking import MlflowClient

    from gan_core.data import load_source

    phase = max(64, round(6000 * scale))
    per_epoch = len(load_source(DataConfig(source="mnist", path=mnist)).x) // 64 * 64
    common = [f"data.path={mnist}", "data.image_size=32", "data.pad_to=32", "train.batch_size=32",
              f"train.epochs={math.ceil(7 * phase / per_epoch)}", "eval.metrics=fid,swd",
              "eval.evaluator=models:/mnist-evaluator@champion", f"eval.every_images={phase}",
              "eval.num_samples=2000", "eval.num_real=2000", "train.sample_every_epochs=100"]
    train(store, "progan_mnist.yaml", "progan-s0",
          [*common, f"progressive.fade_images={phase}", f"progressive.stable_images={phase}"])
    train(store, "dcgan_mnist.yaml", "dcgan32-s0", common)
    client = MlflowClient(store.uri)
    exp = client.get_experiment_by_name("bench")

    def history(name: str, key: str) -> dict:
        (run,) = client.search_runs([exp.experiment_id], f"tags.`gan.run_name` = '{name}'")
        return {h.step: h.value for h in client.get_metric_history(run.info.run_id, key)}

    rows = []
    for res in (4, 8, 16, 32):
        at_res = {k: history("progan-s0", f"res{res}/{k}") for k in ("fid", "swd")}
        (step,) = at_res["fid"]
        rows.append((f"{step * 64:>6,} ProGAN, {res}px reals", {k: v[step] for k, v in at_res.items()}))
        others = [("DCGAN", "dcgan32-s0")]  # at 32px the row above is ProGAN's against 32px reals
        for label, name in ([("ProGAN", "progan-s0")] if res < 32 else []) + others:
            rows.append((f"{step * 64:>6,} {label}, 32px reals",
                         {k: history(name, k).get(step, float("nan")) for k in ("fid", "swd")}))
    return rows


def sr_suite(store: Store, seeds: int, scale: float) -> list[tuple[str, dict]]:
    """The SRResNet phase alone, then the same run resumed into the adversarial phase: PSNR/SSIM
    on the held-out crops after each, beside bicubic on the same crops."""
    pre, adv = max(1, round(6 * scale)), max(1, round(2 * scale))
    sets = [f"data.num_samples={SR_CROPS}", f"train.pretrain_images={pre * SR_CROPS}"]
    phases: dict[str, list[dict]] = {"bicubic": [], "srresnet": [], "srgan": []}
    for s in range(seeds):
        first = train(store, "srgan_sample_images.yaml", f"sr-s{s}", [*sets, f"seed={s}",
                                                                        f"train.epochs={pre}"])
        phases["bicubic"].append({"psnr": first["psnr_bicubic"], "ssim": first["ssim_bicubic"]})
        phases["srresnet"].append({"psnr": first["psnr"], "ssim": first["ssim"]})
        last = train(store, "srgan_sample_images.yaml", f"sr-s{s}", [*sets, f"seed={s}",
                                                                       f"train.epochs={pre + adv}"])
        phases["srgan"].append({"psnr": last["psnr"], "ssim": last["ssim"]})
    keys = ("psnr", "ssim")
    return [("bicubic", _mean(phases["bicubic"], keys)),
            *_seed_rows(f"SRResNet ({pre * SR_CROPS:,} images)", phases["srresnet"], keys),
            *_seed_rows(f"SRGAN (+{adv * SR_CROPS:,} images)", phases["srgan"], keys)]


def print_table(suite: str, rows: list[tuple[str, dict]]) -> None:
    keys = sorted({k for _, r in rows for k in r} | set(TARGETS.get(suite, {})))
    print(f"\n## {suite}")
    table = rows + PUBLISHED.get(suite, []) + [("target", TARGETS.get(suite, {}))]
    first = max(34, max(len(name) for name, _ in table) + 2)
    widths = [max(14, len(k) + 2) for k in keys]
    print(f"{'':{first}}" + "".join(f"{k:>{w}}" for k, w in zip(keys, widths)))
    for name, r in table:
        cells = [r.get(k, "") for k in keys]
        print(f"{name:{first}}" + "".join(f"{c:>{w}.4g}" if isinstance(c, (int, float)) else f"{c:>{w}}"
                                      for c, w in zip(cells, widths)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suites", default="ring,grid,mnist,stacked")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs-scale", type=float, default=1.0, help="multiply each suite's epochs")
    p.add_argument("--toy-packs", default="1,4",
                   help="ring and grid: the discriminator packings to train, comma-separated "
                        "(1 = plain GAN; default 1,4)")
    p.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    add_set_option(p)
    args = p.parse_args()
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    if not suites:
        p.error("--suites names no suite")
    for s in suites:
        if s not in SUITE_CONFIGS:
            p.error(f"unknown suite {s!r}; known: {', '.join(SUITE_CONFIGS)}")
    # the MNIST suites' runs read --mnist, not the configs' ../shared path (relative to the cwd)
    check_sets(p, args.set, tuple((c, [f"data.path={args.mnist}"] if s in MNIST_SUITES else [])
                                  for s in suites for c in SUITE_CONFIGS[s]))
    try:
        packs = [int(v) for v in args.toy_packs.split(",") if v.strip()]
    except ValueError:
        p.error(f"--toy-packs must be comma-separated integers, got {args.toy_packs!r}")
    if not packs or min(packs) < 1:
        p.error(f"--toy-packs needs packings >= 1, got {args.toy_packs!r}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp), args.set)
        if MNIST_SUITES & set(suites):
            ensure_evaluator(store, args.mnist)
        for suite in suites:
            if suite in ("ring", "grid"):
                rows = toy_suite(store, suite, args.seeds, args.epochs_scale, packs)
            elif suite == "mnist":
                epochs = max(1, round(20 * args.epochs_scale))
                draws = ("--draws", str(MNIST_DRAWS))
                rows = [*image_suite(store, args.mnist, args.seeds, epochs, "dcgan_mnist.yaml",
                                     "mnist-dcgan", "DCGAN (ours)", "fid,is,pr", 5000, *draws)[:-1],
                        *image_suite(store, args.mnist, args.seeds, epochs, "selfcond_mnist.yaml",
                                     "mnist-selfcond", "self-conditioned DCGAN (ours)", "fid,is,pr",
                                     5000, *draws)]
            elif suite == "stacked":
                rows = stacked_suite(store, args.mnist, args.seeds, args.epochs_scale)
            elif suite == "cgan":
                rows = image_suite(store, args.mnist, args.seeds, max(1, round(10 * args.epochs_scale)),
                                   "cgan_mnist.yaml", "mnist-cgan", "cDCGAN (ours)",
                                   "cond_acc,fid", 5000, "--per-class")
            elif suite == "gancls":
                rows = gancls_suite(store, args.mnist, args.seeds, max(1, round(10 * args.epochs_scale)))
            elif suite == "progan":
                rows = progan_suite(store, args.mnist, args.epochs_scale)
            else:
                rows = sr_suite(store, args.seeds, args.epochs_scale)
            print_table(suite, rows)


if __name__ == "__main__":
    main()
