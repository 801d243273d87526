"""Sample from a generator in the MLflow registry (or any MLflow model URI).

    python pipelines/generate.py --model models:/NAME@champion --n 64 --out grid.png
        [--label L | --code K | --text "a thick seven" ...] [--npy samples.npy] [--seed S] [--truncation T]

Images are written as a grid; toy models as a scatter (2-D) or density (1-D) plot. A
class-conditional model draws class --label L, or without it a grid with one row per class
(the first 16; n // classes samples each); an InfoGAN model (model.info_codes) likewise draws
code --code K, or a row per code. A text-to-image model draws for its --text captions
(repeatable: a row of n // captions samples each). --truncation T redraws latent entries beyond
+-T (BigGAN's truncation trick): lower T gives cleaner, less varied samples. --npy saves the raw
samples: points for toys, images in [0, 1] as (n, C, H, W).

    python pipelines/generate.py --model models:/NAME@champion --input low.png --out high.png
        [--tile 128] [--overlap 16]

A super-resolution model (srgan) upsamples the image --input instead: any size, grayscale or
RGB as the model was trained, in tiles of --tile input pixels with --overlap pixels of context
when larger."""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from gan_core.data.transforms import to_unit_range
from gan_core.evaluation import class_rows, quality_metrics, sample, save_figure

MAX_ROWS = 16  # a grid shows at most this many classes, one row each


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="MLflow model URI, e.g. models:/digits-dcgan@champion")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", default="grid.png", help="PNG to write (default grid.png)")
    p.add_argument("--npy", help="also save the raw samples to this .npy file")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument("--truncation", type=float, metavar="T",
                   help="draw z within +-T (the truncation trick: fewer odd samples, less variety)")
    p.add_argument("--label", type=int, help="class to draw (class-conditional models)")
    p.add_argument("--code", type=int, help="InfoGAN code to draw (models with model.info_codes)")
    p.add_argument("--text", action="append", default=[], metavar="CAPTION",
                   help="caption to draw for (text-to-image models; repeatable, a row each)")
    p.add_argument("--input", help="low-res image to upsample (super-resolution models)")
    p.add_argument("--tile", type=int, default=128, help="SR: tile side in input pixels (default 128)")
    p.add_argument("--overlap", type=int, default=16,
                   help="SR: context pixels around each tile (default 16)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for flag, value in (("--n", args.n), ("--truncation", args.truncation)):
        if value is not None and not value > 0:
            print(f"error: {flag} must be positive, got {value}", file=sys.stderr)
            return 2
    import mlflow

    from pipelines.tracking import load_generator, tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    try:
        gen = load_generator(args.model)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sr = gen.cfg.model.family == "srgan"
    if sr != (args.input is not None):
        what = "needs --input low.png" if sr else "is not a super-resolution model; --input"
        print(f"error: {args.model} {what}", file=sys.stderr)
        return 2
    if sr:
        return upsample_file(gen.G, args)
    k = getattr(gen.G, "num_classes", 0)
    max_len = gen.cfg.model.text_max_len
    if bool(args.text) != bool(max_len):
        print(f"error: --text: {args.model} " + ("is a text-to-image model; give it a caption"
                                                 if max_len else "takes no text"), file=sys.stderr)
        return 2
    if args.label is not None and not k:
        print(f"error: --label: {args.model} is not class-conditional", file=sys.stderr)
        return 2
    if args.label is not None and not 0 <= args.label < k:
        print(f"error: --label {args.label}: {args.model} draws classes 0..{k - 1}", file=sys.stderr)
        return 2
    codes = getattr(gen.G, "codes", 0)
    if args.code is not None and not 0 <= args.code < codes:
        print(f"error: --code {args.code}: {args.model} " + (f"draws codes 0..{codes - 1}" if codes
              else "has no InfoGAN code (model.info_codes)"), file=sys.stderr)
        return 2
    labels, nrow = None, None
    if max_len:
        from gan_core.text import encode

        nrow = max(1, args.n // len(args.text))
        try:
            labels = np.repeat(encode(args.text, max_len), nrow, axis=0)
        except ValueError as e:
            print(f"error: --text: {e}", file=sys.stderr)
            return 2
    elif (k or codes) and args.label is None and args.code is None:
        labels, nrow = class_rows(gen.G, max(1, args.n // min(k or codes, MAX_ROWS)), MAX_ROWS)
    elif k or codes:
        labels = np.full(args.n, args.label if k else args.code)
    n = args.n if labels is None else len(labels)
    samples = sample(gen.G, n, args.seed, labels=labels, truncation=args.truncation)
    source = gen.cfg.data.source
    save_figure(source, samples, args.out, title=f"{args.model} seed {args.seed}", nrow=nrow)
    what = "" if labels is None else f", class {args.label}" if args.label is not None else \
        f", code {args.code}" if args.code is not None else \
        f", {nrow} a row for each of {len(labels) // nrow} " + \
        ("captions" if max_len else "codes" if codes else "classes")
    print(f"wrote {args.out} ({n} samples of shape {samples.shape[1:]}{what})")
    if args.npy:
        np.save(args.npy, to_unit_range(samples) if samples.ndim == 4 else samples)
        print(f"wrote {args.npy}")
    metrics = quality_metrics(source, samples)
    if metrics:
        print("quality: " + ", ".join(f"{name}={v:.4g}" for name, v in metrics.items()))
    return 0


def upsample_file(G, args: argparse.Namespace) -> int:
    """--input through the SR generator G to --out; errors name the file."""
    from PIL import Image, UnidentifiedImageError

    from gan_core.sr import upscale_tiled

    if args.tile <= 2 * args.overlap or args.overlap < 0:
        print(f"error: --tile {args.tile} must exceed twice --overlap {args.overlap} (>= 0)",
              file=sys.stderr)
        return 2
    try:
        with Image.open(args.input) as im:
            gray = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            if gray != (G.channels == 1):
                kind = "grayscale" if gray else f"colour ({im.mode})"
                print(f"error: {args.input} is {kind}, but the model takes "
                      f"{'grayscale' if G.channels == 1 else 'RGB'} images; convert it first",
                      file=sys.stderr)
                return 2
            a = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        print(f"error: {args.input}: unreadable image ({e})", file=sys.stderr)
        return 2
    lr = torch.from_numpy((a[None] if a.ndim == 2 else a.transpose(2, 0, 1)) / 127.5 - 1)[None]
    out = upscale_tiled(G, lr, args.tile, args.overlap).clamp(-1, 1)[0]
    pixels = np.round(to_unit_range(out).numpy() * 255).astype(np.uint8)
    Image.fromarray(pixels[0] if G.channels == 1 else pixels.transpose(1, 2, 0)).save(args.out)
    print(f"wrote {args.out} ({pixels.shape[2]}x{pixels.shape[1]}, x{G.scale} of "
          f"{a.shape[1]}x{a.shape[0]} {args.input})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
