"""The driver side of a training run: Ray cluster, MLflow run, TorchTrainer, model registry."""
from __future__ import annotations

import os
import sys

import mlflow
import ray
import ray.train
from mlflow.tracking import MlflowClient
from ray._private.services import canonicalize_bootstrap_address  # ray.init()'s own rule
from ray.train.torch import TorchTrainer

from gan_core.checkpoint import load_state
from gan_core.config import Config, ConfigError
from gan_core.data import ArrayData
from gan_core.data.transforms import preprocess_images
from pipelines.datasets import to_ray_dataset
from pipelines.ports import free_port
from pipelines.run_marker import clear_divergence, read_divergence
from pipelines.tracking import (log_generator, log_metrics, log_skipped, start_or_resume_run,
                                tracking_uri, update_champion)
from pipelines.worker import train_loop


def _check_resources(cfg: Config, prefix: str) -> None:
    """Fail fast instead of waiting forever for workers the cluster cannot place."""
    total = ray.cluster_resources()
    need_cpu = cfg.ray.num_workers * cfg.ray.cpus_per_worker
    if total.get("CPU", 0) < need_cpu:
        raise ConfigError(f"{prefix}ray.num_workers", f"{cfg.ray.num_workers} workers x "
                          f"{cfg.ray.cpus_per_worker:g} CPU need {need_cpu:g} CPUs; the cluster has "
                          f"{total.get('CPU', 0):g} (lower ray.cpus_per_worker or the worker count)")
    if cfg.ray.use_gpu and total.get("GPU", 0) < cfg.ray.num_workers:
        raise ConfigError(f"{prefix}ray.use_gpu", f"{cfg.ray.num_workers} workers need as many "
                          f"GPUs; the cluster has {total.get('GPU', 0):g}")


def start(cfg: Config, data: ArrayData, prefix: str = "") -> tuple[str, MlflowClient, dict]:
    """What a run and a sweep (whose keys are `base.`-prefixed) do before training: the tracking
    URI and client, the evaluation inputs, Ray, and a cluster large enough for cfg's workers.
    Raises ConfigError naming the key."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        eval_inputs = evaluation_inputs(cfg, data)
    except ConfigError as e:
        raise ConfigError(f"{prefix}{e.key}", e.detail) from None
    except ValueError as e:  # srgan reads no evaluator, only VGG weights
        key = "loss.vgg_weights" if cfg.model.family == "srgan" else "eval.evaluator"
        raise ConfigError(f"{prefix}{key}", str(e)) from None
    init_ray()
    _check_resources(cfg, prefix)
    return uri, MlflowClient(uri), eval_inputs


def init_ray() -> None:
    """Join the cluster `ray.init()` finds (RAY_ADDRESS, or a `ray start` one on this machine), or
    start a local instance whose processes are told its dashboard's address. Without it, Ray
    Train's placement-group cleaner finds the State API by scanning the machine; beside another
    program's local instance that raises "Found multiple active Ray instances", and the placement
    groups of the trials ASHA stops are never freed: the sweep waits forever for CPUs."""
    if canonicalize_bootstrap_address(None) is not None:
        ray.init()
        return
    port = free_port()  # chosen here, so the address is known before Ray starts
    ray.init(address="local", include_dashboard=True, dashboard_port=port,
             runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}})


# glibc never mmaps a block above this on 64-bit (its documented maximum, always accepted)
MMAP_THRESHOLD_MAX = 32 << 20


def worker_runtime_env(cfg: Config, environ=os.environ) -> dict:
    """The Train workers' malloc settings. With glibc's dynamic thresholds a Ray Train worker's
    training thread handed freed tensor memory back to the kernel every step and faulted it in
    again: 14,000-18,000 page faults a second and 6-7% of a 1-worker DCGAN step in the kernel,
    where the plain loop spent none (bench/throughput.py's `system` column). A fixed trim threshold
    keeps it; fixing it also turns off the dynamic mmap threshold, which then has to be raised
    too, or every block over 128 KiB is mmapped afresh (worse: 39% in the kernel). Values the
    user's environment sets win."""
    mb = cfg.ray.malloc_trim_threshold_mb
    if not mb:
        return {}
    env = {"MALLOC_TRIM_THRESHOLD_": str(mb << 20), "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_MAX)}
    return {"env_vars": {k: v for k, v in env.items() if k not in environ}}


def make_trainer(cfg: Config, dataset, uri: str, run_id: str | None, storage: str,
                 eval_inputs: dict, callbacks: list | None = None,
                 keep_all_checkpoints: bool = False) -> TorchTrainer:
    """run_id None: rank 0 logs nothing to MLflow (a sweep trial's driver logs for it)."""
    keep = None if keep_all_checkpoints else cfg.ray.num_to_keep
    ingest = ray.train.DataConfig.default_ingest_options()
    # the same rows reach the same worker in the same order in every run: a group restarted from
    # a checkpoint replays exactly what an uninterrupted run would have done
    ingest.preserve_order = True
    return TorchTrainer(
        train_loop,
        train_loop_config={"cfg": cfg.to_dict(), "tracking_uri": uri, "run_id": run_id,
                           "storage": storage, "num_rows": dataset.count(), **eval_inputs},
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.ray.num_workers, use_gpu=cfg.ray.use_gpu,
            resources_per_worker={"CPU": cfg.ray.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=cfg.name, storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=cfg.ray.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=keep),
            callbacks=callbacks, worker_runtime_env=worker_runtime_env(cfg)),
        datasets={"train": dataset},
        dataset_config=ray.train.DataConfig(execution_options=ingest),
    )


# metrics that compare samples with the real reference: their real-vs-real floor is logged
FLOOR_METRICS = ("fid", "kid", "is", "pr", "swd")


def evaluation_inputs(cfg: Config, data: ArrayData) -> dict:
    """The feature net's weights and a real reference set for rank 0's periodic evaluation; a
    text-to-image run's evaluation captions (also drawn for its sample grids); and the floor of
    each metric that compares with the reference: eval.num_samples other real images scored
    as the samples will be (same counts, so the same sample-size bias), where the data has them."""
    if cfg.model.family == "srgan":
        return sr_inputs(cfg, data)
    out = _caption_inputs(cfg, data) if cfg.model.text_max_len else {}
    if not cfg.eval.metrics:
        return out
    from gan_core.evaluation import quality_metrics, real_split
    from gan_core.metrics.features import check_images

    from pipelines.evaluators import load_evaluator

    ref, other = real_split(len(data.x), cfg.eval.num_real, cfg.eval.num_samples, cfg.seed)
    out["real_reference"] = real = preprocess_images(data.x[ref], cfg.data.image_size,
                                                     cfg.data.channels)
    net = None
    if cfg.eval.evaluator:
        net = load_evaluator(cfg.eval.evaluator)
        # Stacked MNIST is judged one channel at a time
        check_images(net, real[:1, :1] if cfg.data.source == "stacked_mnist" else real[:1])  # per channel
        if "cond_acc" in cfg.eval.metrics and cfg.model.text_max_len and out["eval_digits"] is None:
            raise ValueError("cond_acc compares the digit each caption names with the evaluator's, "
                             "and the data has no labels and captions naming no single digit")
        if "cond_acc" in cfg.eval.metrics and cfg.model.num_classes and net.num_classes != cfg.model.num_classes:
            raise ValueError(f"cond_acc compares the asked class with the evaluator's, but "
                             f"{cfg.eval.evaluator} tells {net.num_classes} classes apart and "
                             f"model.num_classes is {cfg.model.num_classes}")
        out["evaluator_state"] = net.state_dict()
    floor_metrics = [m for m in cfg.eval.metrics if m in FLOOR_METRICS]
    if floor_metrics and len(other) == cfg.eval.num_samples:
        images = preprocess_images(data.x[other], cfg.data.image_size, cfg.data.channels)
        try:  # what a metric refuses here, it would refuse at the first evaluation
            out["eval_floor"] = floor = quality_metrics(cfg.data.source, images, floor_metrics,
                                                        real, net)
        except ValueError as e:
            counts = f" (eval.num_samples {cfg.eval.num_samples}, eval.num_real " \
                     f"{cfg.eval.num_real})" if "needs at least" in str(e) else ""
            raise ConfigError("eval.metrics", f"{e}{counts}") from None
        print(f"evaluation floor ({len(other):,} real images against the {len(ref):,}-image reference): "
              + ", ".join(f"{k} {v:.4g}" for k, v in floor.items()))
    elif floor_metrics:
        print(f"no evaluation floor: it needs eval.num_real + eval.num_samples = "
              f"{cfg.eval.num_real + cfg.eval.num_samples:,} real images, the data has {len(data.x):,}")
    return out


def sr_inputs(cfg: Config, data: ArrayData) -> dict:
    """SRGAN: the held-out high-res crops (PSNR/SSIM) and, for content 'vgg', the VGG weights
    read once here (ValueError naming the file) and shipped to the workers."""
    out = {"real_reference": preprocess_images(data.holdout, cfg.data.image_size, cfg.data.channels)}
    if cfg.loss.content == "vgg":
        from gan_core.models.vgg import load_vgg_weights

        out["vgg_state"] = load_vgg_weights(cfg.loss.vgg_weights)
    return out


def _caption_inputs(cfg: Config, data: ArrayData) -> dict:
    from gan_core.evaluation import caption_eval_set

    captions, digits, images = caption_eval_set(data.text, data.y, cfg.eval.num_samples, cfg.seed,
                                                data.x)
    return {"eval_captions": captions, "eval_digits": digits,
            "eval_caption_images": preprocess_images(images, cfg.data.image_size, cfg.data.channels)}


def run_training(cfg: Config, data: ArrayData, storage: str) -> int:
    try:
        uri, client, eval_inputs = start(cfg, data)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_id, resumed = start_or_resume_run(
        client, cfg.mlflow.experiment, cfg.name, cfg.flat(),
        tags={"data": data.description, "ray.storage_path": storage})
    floor = eval_inputs.pop("eval_floor", None)
    if not resumed:
        log_skipped(client, run_id, data.skipped)
        log_floor(client, run_id, floor)  # once per run: a resume or restart has it already
    print(f"run '{cfg.name}' ({'resumed' if resumed else 'new'}): MLflow run {run_id} at {uri}")
    try:
        return _train_and_register(cfg, data, storage, uri, client, run_id, eval_inputs)
    except BaseException as e:  # Ctrl-C included: never leave the MLflow run RUNNING
        _fail(client, run_id, f"{type(e).__name__}: {e}")
        raise


def log_floor(client: MlflowClient, run_id: str, floor: dict | None) -> None:
    """evaluation_inputs' real-data floor as floor/<metric> at step 0 (none: nothing)."""
    if floor:
        log_metrics(client, run_id, {f"floor/{k}": v for k, v in floor.items()}, 0)


def _fail(client: MlflowClient, run_id: str, reason: str) -> None:
    client.set_tag(run_id, "failure", reason[:5000])
    client.set_terminated(run_id, "FAILED")


def _train_and_register(cfg: Config, data: ArrayData, storage: str, uri: str,
                        client: MlflowClient, run_id: str, eval_inputs: dict) -> int:
    dataset = to_ray_dataset(data, cfg)
    clear_divergence(storage, cfg.name)  # a resumed run starts from its last good checkpoint
    result = make_trainer(cfg, dataset, uri, run_id, storage, eval_inputs).fit()
    reason = read_divergence(storage, cfg.name)
    if reason:
        _fail(client, run_id, reason)
        kept = result.checkpoint.path if result.checkpoint else "none"
        print(f"error: training diverged; stopped. {reason}\nlast good checkpoint: {kept}",
              file=sys.stderr)
        return 1
    return _register(cfg, client, run_id, result)


def _register(cfg: Config, client: MlflowClient, run_id: str, result) -> int:
    line, moved, reason = register_checkpoint(client, run_id, result.checkpoint, cfg,
                                              cfg.mlflow.metric, cfg.mlflow.mode)
    client.set_tag(run_id, "champion", f"{moved}: {reason}")
    client.set_terminated(run_id, "FINISHED")
    name = cfg.mlflow.registered_model
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.metrics.items()}
    print(f"final metrics: {shown}")
    print(line)
    use = "--input low.png --out high.png" if cfg.model.family == "srgan" else "--n 64 --out grid.png"
    print(f"samples: python pipelines/generate.py --model models:/{name}@champion {use}")
    return 0


def register_checkpoint(client: MlflowClient, run_id: str, checkpoint, cfg: Config,
                        metric: str | None, mode: str) -> tuple[str, bool, str]:
    """Log a training checkpoint's generator (the EMA one when kept) to `run_id`, register it
    under cfg's model name and move `champion` if it beats the current one on `metric`.
    Returns the line to print, whether champion moved, and why."""
    with checkpoint.as_directory() as d:
        state = load_state(d)["training"]
    g_state = state["G_ema"] if state["G_ema"] is not None else state["G"]
    name = cfg.mlflow.registered_model
    version = log_generator(run_id, g_state, cfg.to_dict(), name).registered_model_version
    moved, reason = update_champion(client, name, version, metric, mode)
    line = (f"registered {name} v{version}; champion {'moved to' if moved else 'stays, not'} "
            f"v{version}: {reason}")
    return line, moved, reason
