"""Quality over images seen with the plain single-process loop (GANTraining.step on pre-loaded,
shuffled tensors: no Ray, no DDP, no MLflow), on any device, with the speed switches the device
gets by default: a GPU's time-to-quality curve where the pipeline's stack is not installed.

    python bench/plain_quality.py --config tune_configs/dcgan_mnist.yaml --device cuda
        --evaluator evaluator.pt [--images 3000000] [--eval-every 300000] [--set key=value ...]

`--evaluator`: a file holding a DigitClassifier state dict (for a machine without MLflow: save it
with `--save-evaluator FILE` where MLflow is) or an MLflow model URI such as
models:/mnist-evaluator@champion. Every `--eval-every` images, eval.num_samples samples of the
EMA generator are scored with FID, IS, precision and recall (and, for a class-conditional G
drawing every class equally often, conditional accuracy; a G conditioned on data.clusters draws
each cluster as often as it trained on it) against the pipeline's own reference (the first
eval.num_real images of the seeded order); a Stacked MNIST G's with modes and KL to uniform and
the KL's two parts (PacGAN Table 2 uses eval.num_samples=26000). The floor row scores the
eval.num_samples real images that follow them, as a training run's floor/<metric>. `train s` is
the wall time of the steps alone, `eval s` of the evaluations. The run stops at an evaluation
whose last step's losses are not finite. `train.lr_decay` decays both learning rates over that
share of `--images`, as a pipeline run of that length would; `--save-generator FILE` keeps the
final EMA generator's state dict."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_core.build import build_training  # noqa: E402
from gan_core.config import load_config  # noqa: E402
from gan_core.data import load_source  # noqa: E402
from gan_core.data.transforms import preprocess_images  # noqa: E402
from gan_core.evaluation import quality_metrics, real_split, sample, sample_labels  # noqa: E402
from gan_core.models.evaluator import DigitClassifier  # noqa: E402
from gan_core.speedups import as_input  # noqa: E402
from gan_core.training import apply_optimizer_config, lr_scale  # noqa: E402


def evaluator(where: str) -> DigitClassifier:
    if Path(where).is_file():
        net = DigitClassifier()
        net.load_state_dict(torch.load(where, map_location="cpu", weights_only=True))
        return net
    from pipelines.evaluators import load_evaluator  # MLflow: only for a model URI

    return load_evaluator(where)


# columns per metric set: (key, header, format); IS's two parts (nats) are the classes' spread
# (ln 10 = 2.303 at best) less the samples' ambiguity (0)
DIGIT_COLUMNS = (("fid", "FID", "7.3f"), ("is", "IS", "6.2f"), ("is_class_entropy", "H(y)", "6.3f"),
                 ("is_sample_entropy", "H(y|x)", "6.3f"), ("precision", "prec", "6.3f"),
                 ("recall", "recall", "6.3f"))
# Stacked MNIST: the KL's parts are each channel's digit frequencies and their coupling
STACKED_COLUMNS = (("modes", "modes", "6.0f"), ("kl", "KL", "7.4f"), ("kl_digits", "kl_digits", "9.4f"),
                   ("kl_coupling", "kl_coupling", "11.4f"))


def _header(columns) -> str:
    return " ".join(f"{h:>{f.split('.')[0]}s}" for _, h, f in columns)


def _scores(m: dict, columns) -> str:
    return " ".join(f"{m[k]:{f}}" for k, _, f in columns)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", default="cpu")
    p.add_argument("--evaluator", required=True, help="a state-dict file or an MLflow model URI")
    p.add_argument("--save-evaluator", metavar="FILE", help="also save its weights there")
    p.add_argument("--images", type=float, default=3e6)
    p.add_argument("--eval-every", type=float, default=3e5)
    p.add_argument("--save-generator", metavar="FILE", help="save the final EMA generator's weights")
    args = p.parse_args()
    cfg = load_config(args.config, args.set)
    if cfg.model.text_max_len:
        sys.exit("model.text_max_len: a text-to-image G needs captions to draw for; this bench "
                 "trains unconditional and class-conditional models only")
    net = evaluator(args.evaluator)
    if args.save_evaluator:
        torch.save(net.state_dict(), args.save_evaluator)
    net.to(args.device).eval()
    data = load_source(cfg.data, seed=cfg.seed)
    n_real, n = cfg.eval.num_real, cfg.eval.num_samples
    if len(data.x) < n_real + n:
        sys.exit(f"the floor needs eval.num_real + eval.num_samples = {n_real + n} real images, "
                 f"the data has {len(data.x)}")
    splits = real_split(len(data.x), n_real, n, cfg.seed)  # as a run draws them
    real, other = (preprocess_images(data.x[i], cfg.data.image_size, cfg.data.channels)
                   for i in splits)
    classes = cfg.model.num_classes and not cfg.data.clusters  # clusters: no cond_acc
    if cfg.data.source == "stacked_mnist":
        metrics, columns = ("modes",), STACKED_COLUMNS
    else:
        metrics = ("fid", "is", "pr", "cond_acc") if classes else ("fid", "is", "pr")
        columns = DIGIT_COLUMNS + ((("cond_acc", "cond_acc", "8.4f"),) if classes else ())
    floor = quality_metrics(cfg.data.source, other, metrics, real, net,
                            labels=data.y[splits[1]] if classes else None)

    torch.set_num_threads(cfg.train.threads_per_worker)
    tr, fast = build_training(cfg, args.device)
    x = as_input(torch.from_numpy(preprocess_images(data.x, cfg.data.image_size,
                                                    cfg.data.channels)).to(args.device), fast)
    y = torch.from_numpy(data.y).to(args.device) if cfg.model.num_classes else None
    bs, gen = cfg.train.batch_size, torch.Generator().manual_seed(cfg.seed)
    batches = len(x) // bs
    sync = torch.cuda.synchronize if torch.device(args.device).type == "cuda" else (lambda: None)
    print(f"{args.config} on {args.device} ({fast}), batch {bs}, {n} samples vs {n_real} real")
    print(f"{'images':>10s} {'train s':>8s} {'images/s':>9s} {'eval s':>7s} {_header(columns)}")
    print(f"{'floor':>10s} {'':8s} {'':9s} {'':7s} {_scores(floor, columns)}", flush=True)
    train_s = eval_s = 0.0
    next_eval, i = args.eval_every, 0
    while tr.images_seen < args.images:
        sync()
        start = time.perf_counter()
        while tr.images_seen < next_eval:
            if i % batches == 0:
                perm = torch.randperm(len(x), generator=gen).to(args.device)
            idx = perm[(i % batches) * bs:(i % batches + 1) * bs]
            if cfg.train.lr_decay:
                apply_optimizer_config(tr.opt_g, tr.opt_d, cfg.train,
                                       lr_scale(tr.images_seen, int(args.images), cfg.train.lr_decay))
            out = tr.step(x[idx], gen, None if y is None else y[idx])
            i += 1
        sync()
        train_s += time.perf_counter() - start
        if not all(torch.isfinite(v).all() for v in out.values()):
            print(f"non-finite loss by {tr.images_seen:,} images: stopped")
            return
        start = time.perf_counter()
        m = quality_metrics(cfg.data.source, sample(tr.generator, n, seed=cfg.seed,
                                                    device=args.device), metrics, real, net,
                            labels=sample_labels(tr.generator, n))
        eval_s += time.perf_counter() - start
        print(f"{tr.images_seen:10,d} {train_s:8.1f} {tr.images_seen / train_s:9.0f} {eval_s:7.1f} "
              f"{_scores(m, columns)}", flush=True)
        next_eval += args.eval_every
    if args.save_generator:
        torch.save(tr.generator.state_dict(), args.save_generator)


if __name__ == "__main__":
    main()
