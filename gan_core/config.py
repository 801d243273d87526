"""Typed run configuration: dataclass defaults, overridden by a YAML file and `key=value` pairs.

Every problem is reported as one ConfigError that names the dotted key at fault, before any
expensive work starts.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

DATA_SOURCES = ("gaussian_1d", "ring", "grid", "sklearn_digits", "mnist", "image_folder", "parquet",
                "stacked_mnist", "jsonl", "sklearn_photos")
TOY_SOURCES = ("gaussian_1d", "ring", "grid")
CAPTIONABLE_SOURCES = ("sklearn_digits", "mnist")  # labelled digits: data.captions_per_image
PATH_SOURCES = ("mnist", "stacked_mnist", "image_folder", "parquet", "jsonl")  # read from data.path
MODEL_FAMILIES = ("mlp", "digit_cnn", "dcgan", "progan", "srgan")
LOSS_NAMES = ("minimax", "nonsaturating", "wgan", "hinge", "lsgan")
NORMS = ("batch", "none", "spectral")
D_CONDITIONING = ("projection", "concat")  # how a conditional D takes the label
# image metric -> the figures it logs
METRIC_OUTPUTS = {"fid": ("fid",), "kid": ("kid",), "pr": ("precision", "recall"),
                  "is": ("is", "is_class_entropy", "is_sample_entropy"),  # log IS = H(y) - E H(y|x)
                  "swd": ("swd",),
                  "modes": ("modes", "kl", "kl_digits", "kl_coupling"),  # Stacked MNIST's 1,000
                  "cond_acc": ("cond_acc",),  # conditional G: share drawn as the asked class
                  # text-to-image on generated digit captions: do the attribute words show?
                  "attr_corr": tuple(f"attr_corr_{a}" for a in ("thickness", "slant", "height", "x_offset"))}
IMAGE_METRICS = tuple(METRIC_OUTPUTS)
# Figures that improve downwards; every other reported figure improves upwards.
LOWER_IS_BETTER = ("fid", "kid", "swd", "kl", "kl_digits", "kl_coupling", "is_sample_entropy", "w1",
                   "mean_error", "std_error")
# The figure that decides the champion when mlflow.metric is unset: the first of these the run
# reports. Not psnr: SRGAN trades it for sharper images, so it would favour the blurrier model.
HEADLINE_METRICS = ("fid", "kl", "w1", "kid", "swd", "cond_acc", "is")
SR_SCALES = (2, 4)
CONTENT_LOSSES = ("mse", "l1", "vgg")  # SRGAN's content loss; vgg needs loss.vgg_weights
SR_METRICS = ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic")  # what an srgan run always logs
AUGMENT_POLICIES = ("translation", "cutout")  # loss.diffaugment (gan_core/augment.py)
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 on a GPU that has it (gan_core/speedups.py)
Switch = typing.Literal["auto", True, False]  # auto: on for CUDA, off on CPU (gan_core/speedups.py)


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the dotted key at fault."""

    def __init__(self, key: str, message: str):
        self.key, self.detail = key, message
        super().__init__(f"config key '{key}': {message}")


@dataclass
class DataConfig:
    source: str = "sklearn_digits"
    path: Optional[str] = None  # mnist dir, image folder, parquet file/dir or captions .jsonl
    num_samples: int = 50_000  # toy sources: points drawn once per run
    image_size: int = 16  # images are resized to this square size in map_batches
    channels: int = 1  # 1 = grayscale, 3 = RGB
    image_column: str = "image"  # parquet
    label_column: Optional[str] = "label"  # parquet; None when there are no labels
    caption_column: Optional[str] = None  # parquet: string or list<string> captions per row
    # > 0: caption each labelled digit (sklearn_digits, mnist) this many ways from its label and
    # measured thickness, slant, height and position (text-to-image without a captioned set)
    captions_per_image: int = 0
    # an unreadable, undecodable or odd-sized image (image folder, Parquet bytes, JSON Lines):
    # "error" stops before training, naming it; "skip" leaves it out, counted in MLflow
    on_bad_sample: str = "error"
    pad_to: int = 0  # > 0: images are zero-padded (centred) to this square size at load, e.g. MNIST 28 -> 32
    # Train on num_samples random image_size crops of the source's images (any sizes) instead
    # of whole resized images; holdout_crops crops of a held-out part are kept for evaluation.
    random_crops: bool = False
    holdout_crops: int = 256
    # > 0: label each image with its cluster (of this many: k-means on a spectral embedding of the
    # images' neighbour graph) in place of any labels, for a G and D conditioned on the cluster
    # (model.num_classes = clusters) that samples clusters as often as the data holds them: a
    # self-conditioned GAN; 0 = off
    clusters: int = 0
    # with clusters: cluster each channel's image apart (Stacked MNIST: a digit per channel, a
    # cluster of whole images is a blend of digit triples); the label joins the channels' clusters
    # (k_R * clusters^2 + k_G * clusters + k_B, model.num_classes = clusters^channels), and G and D
    # embed each channel's cluster apart
    cluster_channels: bool = False


@dataclass
class ModelConfig:
    family: str = "dcgan"
    z_dim: int = 100
    g_width: int = 64  # hidden units (mlp) or base channels (conv)
    d_width: int = 64
    depth: int = 3  # hidden layers of the MLPs
    g_norm: str = "batch"
    d_norm: str = "batch"
    pack: int = 1  # PacGAN: D judges `pack` samples jointly; 1 = off
    # dcgan: a hidden fully connected layer of this width between z and G's first feature map
    # and between D's last feature map and its logit (InfoGAN's MNIST nets); 0 = none
    fc_width: int = 0
    num_classes: int = 0  # > 0: class-conditional G and D, labels from the data; 0 = off
    # > 0: InfoGAN's categorical code of this many values joins z, and a head on D's features
    # learns to read it back (loss.info_weight); unsupervised, mlp and dcgan; 0 = off
    info_codes: int = 0
    cond_dim: int = 16  # label embedding joined with z (and with D's input for d_cond=concat)
    d_cond: str = "projection"  # how D takes the label: projection or concat
    # > 0: text-conditional (GAN-CLS): captions as tokens padded to this length; 0 = off
    text_max_len: int = 0
    # width of the text encoder (characters, convs, GRU); its last layer maps the pooled
    # sentence to the condition width (cond_dim, or D's features for projection)
    text_dim: int = 128
    mbstd_group: int = 4  # progan (and dcgan's d_mbstd): minibatch stddev group size; must divide train.batch_size
    # dcgan: ProGAN's minibatch-stddev feature map in D (it is always in progan's D): D sees how
    # varied each group of mbstd_group samples is, against a G that draws too few kinds
    d_mbstd: bool = False
    sr_scale: int = 4  # srgan: upsampling factor (2 or 4); G takes image_size / sr_scale inputs
    sr_blocks: int = 16  # srgan: residual blocks of G


@dataclass
class LossConfig:
    name: str = "nonsaturating"
    gp_weight: float = 0.0  # WGAN-GP gradient penalty weight (10 in the paper)
    r1_gamma: float = 0.0  # R1 penalty weight; 0 disables
    r1_interval: int = 16  # lazy regularisation: R1 every N D steps, scaled by N
    # GAN-CLS matching-aware D: weight of the (real image, mismatched condition) term; 0.5 = paper
    mismatch_weight: float = 0.0
    interp_weight: float = 0.0  # GAN-INT: weight of G's loss on interpolated conditions
    drift: float = 0.0  # epsilon drift: + drift * E[D(x)^2] on reals keeps a WGAN critic near 0 (ProGAN: 0.001)
    content: str = "mse"  # srgan: pixel mse or l1, or vgg (features of loss.vgg_weights)
    adv_weight: float = 1e-3  # srgan: weight of the adversarial term beside the content loss
    vgg_weights: Optional[str] = None  # srgan: a VGG19 state-dict file for content=vgg
    # DiffAugment: transforms applied to every image D sees, real and fake (gan_core/augment.py);
    # against D memorising a small training set. e.g. [translation, cutout]
    diffaugment: list = field(default_factory=list)
    # top-k training (Sinha et al. 2020): G learns only from the fakes D rates most real. The
    # share kept halves every topk_half_life_images, from 1 down to topk; 0 keeps every fake
    topk: float = 0.0
    topk_half_life_images: float = 300_000.0
    info_weight: float = 1.0  # model.info_codes: weight of the code's cross-entropy in G's and D's losses
    # MSGAN's mode-seeking term: weight of 1 / (image distance per latent distance) in G's loss,
    # over pairs of fakes drawn for the same condition; against a G that ignores z; 0 = off
    mode_seeking: float = 0.0


@dataclass
class TrainConfig:
    batch_size: int = 64  # per worker
    epochs: int = 10
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 1  # D steps per G step
    # final share of the run (in images) over which both learning rates fall linearly to 0;
    # 0 keeps them constant
    lr_decay: float = 0.0
    ema_half_life_images: float = 10_000.0  # 0 disables EMA of G
    log_every_steps: int = 50
    checkpoint_every_epochs: int = 1
    sample_every_epochs: int = 1
    threads_per_worker: int = 1
    pretrain_images: int = 0  # srgan: content-loss-only (SRResNet) phase for this many images
    # speed switches, resolved per device by gan_core/speedups.py
    precision: str = "auto"  # fp32, or bf16 autocast of the forwards (losses stay fp32)
    channels_last: Switch = "auto"
    fused_adam: Switch = "auto"
    grad_bucket_view: Switch = "auto"  # DDP gradient_as_bucket_view
    compile: bool = False  # torch.compile G and D (minutes of compiling, then faster steps)
    # batches Ray Data prepares (and moves to the device) ahead; in Ray 2.60 more than 1 makes
    # the seeded local shuffle's order vary from run to run (measured: tests/integration/test_prefetch.py)
    prefetch_batches: int = 1
    # step batches in each batch Ray Data delivers (the steps take views of it); 0: as many as fit
    # 4 MiB, at most 16 (pipelines/worker.py)
    fetch_batches: int = 0


@dataclass
class EvalConfig:
    # Evaluate every N images seen (0: at every sampling epoch). Toys always get their metrics.
    every_images: int = 0
    num_samples: int = 2_500  # generated samples per evaluation
    metrics: list = field(default_factory=list)  # image metrics: fid, kid, is, pr, swd
    evaluator: Optional[str] = None  # MLflow model URI of the feature net for image metrics
    num_real: int = 2_000  # real images kept as the reference set


@dataclass
class ProgressiveConfig:
    """model.family progan: 4x4 stable, then per doubling a linear fade-in and a stable phase."""
    fade_images: int = 600_000  # images over which a new block's alpha goes 0 -> 1
    stable_images: int = 600_000  # images trained at each resolution after its fade-in


@dataclass
class RayConfig:
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 0.5  # fractions leave CPUs to Ray Data on small machines
    max_failures: int = 0
    storage_path: str = "ray_results"  # relative paths resolve against the working directory
    num_to_keep: int = 2
    # Freed memory a worker keeps instead of handing it back to the kernel and faulting it in again
    # next step (glibc's malloc; 0: glibc's own dynamic thresholds). See pipelines/run.py.
    malloc_trim_threshold_mb: int = 1024


@dataclass
class MlflowConfig:
    experiment: str = "gan"
    registered_model: str = "digits-dcgan"
    # Run metric that decides the champion; None: the first of HEADLINE_METRICS the run reports,
    # or the newest run wins when it reports none.
    metric: Optional[str] = None
    mode: Optional[str] = None  # None: the metric's own direction (better_mode)


@dataclass
class Config:
    name: str = "dcgan-digits"  # Ray run name: re-running with the same name resumes
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def flat(self) -> dict:
        """Dotted key -> value, for MLflow params."""
        out = {}
        for section, values in self.to_dict().items():
            if isinstance(values, dict):
                out.update({f"{section}.{k}": v for k, v in values.items()})
            else:
                out[section] = values
        return out


def _coerce(key: str, value: Any, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if origin is typing.Literal:  # a fixed set of values; YAML gives true/false as bools
        allowed = typing.get_args(typ)
        if any(type(value) is type(a) and value == a for a in allowed):
            return value
        raise ConfigError(key, f"unknown value {value!r}; choose one of "
                               f"{', '.join(str(a).lower() for a in allowed)}")
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, value, args[0])
    if value is None:
        raise ConfigError(key, f"must be a {typ.__name__}, got null")
    if typ is list:  # a list of names; `--set eval.metrics=fid,kid` gives a string
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, f"must be a list of names, got {value!r}")
        return value
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"must be true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(key, f"must be an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(key, f"must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(key, f"must be finite, got {value!r}")
        return float(value)
    if typ is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # `--set mlflow.experiment=2024` parses as a number
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {typ} for {key}")  # a bug in this module


def _apply(obj: Any, values: dict, prefix: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(prefix.rstrip("."), f"must be a mapping, got {values!r}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for k, v in values.items():
        key = f"{prefix}{k}"
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(key, f"unknown key{hint}")
        current = getattr(obj, k)
        if dataclasses.is_dataclass(current):
            _apply(current, v, f"{key}.")
        else:
            setattr(obj, k, _coerce(key, v, hints[k]))


def _check(cfg: Config, check_paths: bool) -> None:
    def one_of(key, value, allowed):
        if value not in allowed:
            raise ConfigError(key, f"unknown value {value!r}; choose one of {', '.join(map(str, allowed))}")

    def positive(key, value):
        if value <= 0:
            raise ConfigError(key, f"must be > 0, got {value!r}")

    one_of("data.source", cfg.data.source, DATA_SOURCES)
    one_of("model.family", cfg.model.family, MODEL_FAMILIES)
    one_of("loss.name", cfg.loss.name, LOSS_NAMES)
    one_of("model.g_norm", cfg.model.g_norm, NORMS)
    one_of("model.d_norm", cfg.model.d_norm, NORMS)
    one_of("model.d_cond", cfg.model.d_cond, D_CONDITIONING)
    one_of("data.channels", cfg.data.channels, (1, 3))
    one_of("data.on_bad_sample", cfg.data.on_bad_sample, ("error", "skip"))
    one_of("train.precision", cfg.train.precision, PRECISIONS)
    for key in ("data.num_samples", "data.image_size", "model.z_dim", "model.g_width",
                "model.d_width", "model.depth", "model.cond_dim", "model.text_dim",
                "train.batch_size", "train.epochs", "train.lr_g", "train.lr_d", "train.n_critic",
                "train.log_every_steps",
                "train.checkpoint_every_epochs", "train.sample_every_epochs", "eval.num_samples", "eval.num_real",
                "train.threads_per_worker", "ray.num_workers", "ray.cpus_per_worker",
                "ray.num_to_keep", "loss.r1_interval"):
        section, name = key.split(".")
        positive(key, getattr(getattr(cfg, section), name))
    for key in ("loss.gp_weight", "loss.r1_gamma", "train.ema_half_life_images", "ray.max_failures",
                "model.num_classes", "model.text_max_len", "loss.interp_weight",
                "data.captions_per_image", "loss.drift", "data.pad_to", "loss.adv_weight",
                "train.pretrain_images", "train.prefetch_batches", "train.fetch_batches",
                "ray.malloc_trim_threshold_mb", "model.fc_width", "model.info_codes", "data.clusters",
                "loss.mode_seeking"):
        section, name = key.split(".")
        if getattr(getattr(cfg, section), name) < 0:
            raise ConfigError(key, "must be >= 0")
    for key in ("train.beta1", "train.beta2"):
        if not 0 <= getattr(cfg.train, key.split(".")[1]) < 1:
            raise ConfigError(key, "must be in [0, 1)")
    if not 0 <= cfg.train.lr_decay <= 1:
        raise ConfigError("train.lr_decay", f"is a share of the run, in [0, 1]; got {cfg.train.lr_decay!r}")
    toy = cfg.data.source in TOY_SOURCES
    if toy and cfg.model.family != "mlp":
        raise ConfigError("model.family", f"toy source '{cfg.data.source}' needs family 'mlp'")
    if not toy and cfg.model.family == "mlp" and cfg.data.image_size > 64:
        raise ConfigError("data.image_size", "the MLP family is for toys and images up to 64x64")
    if cfg.model.family == "digit_cnn" and cfg.data.image_size != 28:
        raise ConfigError("data.image_size", "family 'digit_cnn' generates 28x28 images; set 28")
    if cfg.model.family == "dcgan" and (cfg.data.image_size % 4 or cfg.data.image_size < 8):
        raise ConfigError("data.image_size", "dcgan needs a multiple of 4 that is >= 8")
    if cfg.model.family == "progan":
        _check_progressive(cfg)
    if cfg.model.d_mbstd and cfg.model.family != "dcgan":
        raise ConfigError("model.d_mbstd", f"is for family 'dcgan' (progan's D always has it), "
                                           f"not '{cfg.model.family}'; set false")
    if cfg.model.family == "progan" or cfg.model.d_mbstd:
        _check_mbstd(cfg)
    if cfg.train.compile and cfg.model.family == "progan":
        raise ConfigError("train.compile", "progan's fade-in changes alpha every step, and each "
                                           "value would recompile; set false")
    if cfg.model.pack < 1:
        raise ConfigError("model.pack", f"must be >= 1, got {cfg.model.pack!r}")
    if cfg.model.fc_width and cfg.model.family != "dcgan":
        raise ConfigError("model.fc_width", f"the hidden fully connected layers are implemented "
                                            f"for family 'dcgan', not '{cfg.model.family}'; set 0")
    if cfg.model.pack > 1 and cfg.model.family not in ("mlp", "dcgan"):
        raise ConfigError("model.pack", f"packing is implemented for families 'mlp' and 'dcgan', "
                                        f"not '{cfg.model.family}'; set model.pack=1")
    if cfg.data.clusters:  # before the label checks: clusters are where its labels come from
        _check_clusters(cfg, toy)
    elif cfg.data.cluster_channels:
        raise ConfigError("data.cluster_channels", "clusters each channel apart: set data.clusters "
                                                   "> 0 too, or false")
    if cfg.model.num_classes and toy:
        raise ConfigError("model.num_classes", f"toy source '{cfg.data.source}' has no labels; set 0")
    if cfg.model.text_max_len and cfg.model.num_classes:
        raise ConfigError("model.text_max_len", "text and class conditions exclude each other; "
                                                "set model.text_max_len=0 or model.num_classes=0")
    if cfg.model.text_max_len and toy:
        raise ConfigError("model.text_max_len", f"toy source '{cfg.data.source}' has no captions; set 0")
    if cfg.model.text_max_len and cfg.model.pack > 1:
        raise ConfigError("model.pack", "packing is for unconditional models; set model.pack=1 "
                                        "or model.text_max_len=0")
    if cfg.data.captions_per_image and cfg.data.source not in CAPTIONABLE_SOURCES:
        raise ConfigError("data.captions_per_image", f"captions are generated for labelled digits "
                          f"({', '.join(CAPTIONABLE_SOURCES)}), not '{cfg.data.source}'; set 0")
    has_text = (cfg.data.captions_per_image or cfg.data.source == "jsonl"
                or (cfg.data.source == "parquet" and cfg.data.caption_column))
    if cfg.model.text_max_len and not has_text and not toy:
        raise ConfigError("model.text_max_len", f"source '{cfg.data.source}' brings no captions: set "
                          f"data.captions_per_image (digits), use source jsonl, or parquet with "
                          f"data.caption_column")
    if not 0 <= cfg.loss.mismatch_weight < 1:
        raise ConfigError("loss.mismatch_weight", "must be in [0, 1)")
    if not 0 <= cfg.loss.topk < 1:
        raise ConfigError("loss.topk", f"the least share of fakes G learns from: in (0, 1), or 0 "
                                       f"for all of them; got {cfg.loss.topk}")
    if cfg.loss.topk and not cfg.loss.topk_half_life_images > 0:
        raise ConfigError("loss.topk_half_life_images", "must be positive")
    for key in ("loss.topk", "loss.mode_seeking"):  # both act on fakes drawn from latents
        if getattr(cfg.loss, key.split(".")[1]) and cfg.model.family == "srgan":
            raise ConfigError(key, "srgan's G draws from a low-res input, not a latent; set 0")
    conditional = cfg.model.num_classes or cfg.model.text_max_len
    for key in ("loss.mismatch_weight", "loss.interp_weight"):
        if getattr(cfg.loss, key.split(".")[1]) and not conditional:
            raise ConfigError(key, "needs a conditional model (model.num_classes > 0 or "
                                   "model.text_max_len > 0)")
    if cfg.model.info_codes:
        _check_info(cfg)
    if cfg.model.num_classes and cfg.model.pack > 1:
        raise ConfigError("model.pack", "packing is for unconditional models; set model.pack=1 "
                                        "or model.num_classes=0")
    if cfg.train.batch_size % cfg.model.pack:
        raise ConfigError("train.batch_size", f"{cfg.train.batch_size} is not divisible by "
                                              f"model.pack={cfg.model.pack}")
    if cfg.data.source == "stacked_mnist" and cfg.data.channels != 3:
        raise ConfigError("data.channels", "source 'stacked_mnist' stacks three digits as RGB; set 3")
    if cfg.data.source in PATH_SOURCES and not cfg.data.path:
        raise ConfigError("data.path", f"source '{cfg.data.source}' needs a path")
    if check_paths and cfg.data.path and cfg.data.source in PATH_SOURCES:
        if not Path(os.path.expanduser(cfg.data.path)).exists():
            raise ConfigError("data.path", f"no such file or directory: {cfg.data.path}")
    for name in cfg.eval.metrics:
        one_of("eval.metrics", name, IMAGE_METRICS)
    for name in cfg.loss.diffaugment:
        one_of("loss.diffaugment", name, AUGMENT_POLICIES)
    if cfg.loss.diffaugment and toy:
        raise ConfigError("loss.diffaugment", f"augments images; toy source '{cfg.data.source}' "
                                              "gives points: set []")
    if cfg.data.source == "stacked_mnist" and set(cfg.eval.metrics) - {"modes", "swd"}:
        raise ConfigError("eval.metrics", "Stacked MNIST is judged per channel: use modes (and swd); "
                          "the 1-channel evaluator cannot take fid/kid/is/pr on 3 channels")
    if "modes" in cfg.eval.metrics and cfg.data.source != "stacked_mnist":
        raise ConfigError("eval.metrics", "'modes' counts Stacked MNIST's 1,000 modes; the source "
                          f"is {cfg.data.source!r}")
    if "cond_acc" in cfg.eval.metrics and not (cfg.model.num_classes or cfg.model.text_max_len):
        raise ConfigError("eval.metrics", "'cond_acc' needs a conditional model (model.num_classes "
                                          "> 0 or model.text_max_len > 0)")
    if "attr_corr" in cfg.eval.metrics and not (cfg.model.text_max_len and cfg.data.captions_per_image):
        raise ConfigError("eval.metrics", "'attr_corr' reads the attribute words of generated digit "
                                          "captions: set model.text_max_len and data.captions_per_image")
    if cfg.eval.metrics and toy:
        raise ConfigError("eval.metrics", "image metrics need an image source; toys get theirs always")
    if set(cfg.eval.metrics) - {"swd", "attr_corr"} and not cfg.eval.evaluator:
        raise ConfigError("eval.evaluator", f"metrics {cfg.eval.metrics} need a feature net: "
                          "set an MLflow model URI such as models:/mnist-evaluator@champion")
    if cfg.eval.every_images < 0:
        raise ConfigError("eval.every_images", "must be >= 0")
    _check_sr(cfg, check_paths)
    _check_champion(cfg)
    if cfg.loss.gp_weight > 0 and cfg.loss.r1_gamma > 0:
        raise ConfigError("loss.r1_gamma", "use either loss.gp_weight or loss.r1_gamma, not both")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", cfg.name):
        raise ConfigError("name", f"use letters, digits, '.', '_' and '-' (a directory and an MLflow "
                          f"tag), got {cfg.name!r}")
    if not 0 <= cfg.seed < 2**31:
        raise ConfigError("seed", f"must be in [0, 2**31), got {cfg.seed}")


def _check_sr(cfg: Config, check_paths: bool) -> None:
    """The srgan family and random crops: scale, content loss, crops of a usable size."""
    d, m, loss = cfg.data, cfg.model, cfg.loss
    if d.random_crops and d.source in TOY_SOURCES:
        raise ConfigError("data.random_crops", f"toy source '{d.source}' has no images to crop")
    if d.random_crops and d.holdout_crops <= 0:
        raise ConfigError("data.holdout_crops", f"must be > 0, got {d.holdout_crops}")
    if m.family != "srgan":
        return
    if m.sr_scale not in SR_SCALES:
        raise ConfigError("model.sr_scale", f"unknown value {m.sr_scale!r}; choose one of 2, 4")
    if m.sr_blocks <= 0:
        raise ConfigError("model.sr_blocks", f"must be > 0, got {m.sr_blocks}")
    if not d.random_crops:
        raise ConfigError("data.random_crops", "family 'srgan' trains on random crops with "
                          "held-out crops for PSNR/SSIM; set true")
    if d.image_size % m.sr_scale or d.image_size // m.sr_scale < 4:
        raise ConfigError("data.image_size", f"srgan crops must be a multiple of model.sr_scale="
                          f"{m.sr_scale} and at least {4 * m.sr_scale}, got {d.image_size}")
    for key in ("num_classes", "text_max_len"):
        if getattr(m, key):
            raise ConfigError(f"model.{key}", "srgan is conditioned on the low-res image; set 0")
    if cfg.eval.metrics:
        raise ConfigError("eval.metrics", f"srgan always logs {', '.join(SR_METRICS)}; leave "
                          "eval.metrics empty")
    if loss.content not in CONTENT_LOSSES:
        raise ConfigError("loss.content", f"unknown value {loss.content!r}; choose one of "
                          f"{', '.join(CONTENT_LOSSES)}")
    if loss.content == "vgg" and not loss.vgg_weights:
        raise ConfigError("loss.vgg_weights", "content 'vgg' needs a VGG19 weights file (a "
                          "torchvision-layout state dict); nothing is downloaded")
    if loss.content == "vgg" and d.channels != 3:
        raise ConfigError("loss.content", "the VGG feature loss takes RGB images; set "
                          "data.channels=3 or loss.content=mse")
    if check_paths and loss.content == "vgg" and not Path(os.path.expanduser(loss.vgg_weights)).is_file():
        raise ConfigError("loss.vgg_weights", f"no such file: {loss.vgg_weights}")


def _check_mbstd(cfg: Config) -> None:
    """D's minibatch-stddev groups split each worker's batch (after PacGAN packing) evenly."""
    group = cfg.model.mbstd_group
    if group <= 0:
        raise ConfigError("model.mbstd_group", f"must be > 0, got {group!r}")
    inputs = cfg.train.batch_size // cfg.model.pack  # a pack is one D input
    if inputs % group:
        packed = f" (packed in {cfg.model.pack}s: {inputs} D inputs)" if cfg.model.pack > 1 else ""
        raise ConfigError("train.batch_size", f"{cfg.train.batch_size} per worker{packed} is not "
                          f"divisible by model.mbstd_group={group} (the minibatch stddev groups)")


def _check_progressive(cfg: Config) -> None:
    size = cfg.data.image_size
    if size < 8 or size & (size - 1):
        raise ConfigError("data.image_size", f"family 'progan' grows 4x4 -> 8x8 -> ... by doublings: "
                          f"use a power of two >= 8, got {size} (data.pad_to pads e.g. MNIST 28 -> 32)")
    p = cfg.progressive
    for key in ("fade_images", "stable_images"):
        if getattr(p, key) <= 0:
            raise ConfigError(f"progressive.{key}", f"must be > 0, got {getattr(p, key)!r}")
    for key in ("num_classes", "text_max_len"):
        if getattr(cfg.model, key):
            raise ConfigError(f"model.{key}", "family 'progan' is unconditional here; set 0")


def better_mode(metric: str) -> str:
    """"min" for a figure that improves downwards (FID, KL, ...), else "max"."""
    return "min" if metric in LOWER_IS_BETTER else "max"


def _valid_mode(key: str, mode: Optional[str]) -> None:
    if mode not in (None, "max", "min"):
        raise ConfigError(key, f"unknown value {mode!r}; choose one of max, min")


def checked_mode(key: str, metric: str, mode: Optional[str]) -> str:
    """The optimisation mode for `metric`: `mode` when it agrees with the metric's direction,
    that direction when `mode` is None; a ConfigError naming `key` otherwise."""
    _valid_mode(key, mode)
    if mode is None:
        return better_mode(metric)
    if mode != better_mode(metric):
        raise ConfigError(key, f"{metric!r} is better when {'lower' if mode == 'max' else 'higher'}"
                               f", so mode must be {better_mode(metric)} (or left out), not {mode}")
    return mode


def _check_champion(cfg: Config) -> None:
    """Refuse an mlflow.metric the run does not report, or an mlflow.mode against its direction.
    With mlflow.metric unset, both come from the run's headline figure and mlflow.mode is not
    read (configs saved before this rule carry mode "max" there)."""
    reported = reported_metrics(cfg)
    m = cfg.mlflow
    if m.metric is None:
        _valid_mode("mlflow.mode", m.mode)  # not read here, but a typo is still refused
        m.metric = next((h for h in HEADLINE_METRICS if h in reported), None)
        m.mode = better_mode(m.metric) if m.metric else None
        return
    if m.metric not in reported:
        raise ConfigError("mlflow.metric", f"no evaluation reports {m.metric!r}; this "
                          f"config reports: {', '.join(reported) or 'none'}")
    m.mode = checked_mode("mlflow.mode", m.metric, m.mode)


def _check_clusters(cfg: Config, toy: bool) -> None:
    k = cfg.data.clusters
    if k == 1:
        raise ConfigError("data.clusters", "k-means needs at least 2 clusters, or 0 for off; got 1")
    if toy or cfg.data.random_crops or cfg.data.captions_per_image:
        raise ConfigError("data.clusters", "clusters whole images; set 0 for toy sources, random "
                                           "crops and captions")
    if cfg.data.cluster_channels and cfg.data.channels < 2:
        raise ConfigError("data.cluster_channels", f"clusters each channel apart, and the images "
                                                   f"have {cfg.data.channels}; set false")
    labels = k ** cfg.data.channels if cfg.data.cluster_channels else k
    if cfg.model.num_classes != labels:
        what = f"{cfg.data.channels} channels' clusters joined" if cfg.data.cluster_channels else "clusters"
        raise ConfigError("model.num_classes", f"G and D are conditioned on data.clusters={k} "
                                               f"{what}: set {labels}, got {cfg.model.num_classes}")
    if "cond_acc" in cfg.eval.metrics:
        raise ConfigError("eval.metrics", "'cond_acc' checks classes, and data.clusters labels "
                                          "the images with k-means clusters")


def _check_info(cfg: Config) -> None:
    m = cfg.model
    if m.info_codes < 2:
        raise ConfigError("model.info_codes", f"a code needs at least 2 values, got {m.info_codes}")
    if m.family not in ("mlp", "dcgan"):
        raise ConfigError("model.info_codes", f"InfoGAN's code is implemented for families 'mlp' "
                                              f"and 'dcgan', not '{m.family}'; set 0")
    if m.num_classes or m.text_max_len:
        raise ConfigError("model.info_codes", "a conditional model gets its classes from the "
                                              "labels; set model.info_codes=0")
    if m.pack > 1:
        raise ConfigError("model.info_codes", "Q reads one sample's code, and a packed D judges "
                                              "several at once; set model.pack=1 or model.info_codes=0")
    if not cfg.loss.info_weight > 0:
        raise ConfigError("loss.info_weight", f"must be > 0 with model.info_codes, got "
                                              f"{cfg.loss.info_weight!r}")


def reported_metrics(cfg: Config) -> tuple[str, ...]:
    """The quality metrics a run with this config logs (what mlflow.metric may name)."""
    if cfg.model.family == "srgan":
        return SR_METRICS
    if cfg.data.source == "gaussian_1d":
        return ("w1", "mean_error", "std_error")
    if cfg.data.source in TOY_SOURCES:
        return ("modes", "high_quality", "kl")
    return tuple(out for m in cfg.eval.metrics for out in METRIC_OUTPUTS[m])


def parse_override(text: str) -> tuple[str, Any]:
    """`train.lr_g=1e-3` -> ("train.lr_g", 0.001); values parse as YAML scalars."""
    if "=" not in text:
        raise ConfigError(text, "an override must look like key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _nest(key: str, value: Any) -> dict:
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _merge(a: dict, b: dict) -> dict:
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            _merge(a[k], v)
        else:
            a[k] = v
    return a


def from_dict(values: dict, check_paths: bool = True) -> Config:
    """A validated Config; check_paths=False where the data need not be present (a loaded model)."""
    cfg = Config()
    _apply(cfg, values or {}, "")
    _check(cfg, check_paths)
    return cfg



def load_config(path: Optional[str] = None, overrides: tuple[str, ...] | list[str] = (),
                check_paths: bool = True) -> Config:
    """Defaults <- YAML file <- `key=value` overrides, then validation (of data paths too, unless
    `check_paths` is false: for models built without reading their data)."""
    values: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("--config", f"no such file: {path}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError("--config", f"{path} is not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("--config", f"{path} must hold a mapping at the top level")
        values = loaded or {}
    for text in overrides:
        key, value = parse_override(text)
        values = _merge(values, _nest(key, value))
    return from_dict(values, check_paths)
