"""Training a model of any family (``families``: VDM, ARDM): a ``TrainState``, a jitted
``train_step`` and ``eval_step``, and ``fit``, the loop behind ``diffc train vdm|ardm`` (random
crops, Adam with warm-up and clipping, EMA weights, periodic validation and checkpoints, exact
resume). The family supplies the loss and what a checkpoint stores; the loop is the same.

Data parallelism: the batch is sharded over every device of a 1-D ``jax.sharding.Mesh`` named
``data`` and the state is replicated, so XLA inserts the gradient all-reduce. On several hosts,
``diffc.runtime.distributed.join_processes`` first calls ``jax.distributed.initialize``: with
``diffc train vdm --coordinator HOST:PORT --num-processes N --process-id I`` on every host, or with
no arguments where a launcher JAX detects by itself started several processes (SLURM's srun, Open
MPI's mpirun, a Kubernetes Indexed Job); each process then draws ``batch / N`` crops (seeded by
seed, process and step) and ``jax.make_array_from_process_local_data`` assembles the global batch. Only
process 0 writes checkpoints. docs/distributed.md shows the commands.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from diffc.models import checkpoint, data, families
from diffc.models.configs import Recipe

CPU_NOTE = (
    "Trained on 2-core CPUs, resumed from session to session at the lowest priority (sessions and "
    "cpu_time_s say how long). A GPU run of the same command with a larger config should replace it."
)


VAL_BATCH = 64  # validation crops per network call

class TrainState(train_state.TrainState):
    """Parameters, optimiser state and step (flax), plus EMA parameters and the run's base key."""

    ema_params: Any
    key: jax.Array


def make_optimizer(config: Recipe) -> optax.GradientTransformation:
    """Adam(W) with linear warm-up to ``learning_rate`` and global-norm gradient clipping."""
    lr = optax.linear_schedule(0.0, config.learning_rate, max(config.warmup, 1))
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(lr, b1=0.9, b2=0.99, weight_decay=config.weight_decay),
    )


def create_state(config: Recipe, seed: int) -> TrainState:
    params = families.of(config).init_params(config, seed)
    run_key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    return TrainState.create(
        apply_fn=None, params=params, tx=make_optimizer(config),
        ema_params=jax.tree.map(jnp.copy, params), key=run_key,
    )


def train_step(state: TrainState, k: jax.Array, config: Recipe) -> tuple[TrainState, dict]:
    """One Adam step on the family's loss (bits/dim) of the batch k (B, H, W, 3) uint8."""
    key = jax.random.fold_in(state.key, state.step)
    loss_fn = families.of(config).loss
    (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, config, k, key)
    state = state.apply_gradients(grads=grads)
    decay = jnp.minimum(config.ema_decay, (1.0 + state.step) / (10.0 + state.step))
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, state.params)
    metrics = {**terms, "grad_norm": optax.tree.norm(grads)}
    return state.replace(ema_params=ema), metrics


def eval_step(params: Any, k: jax.Array, key: jax.Array, config: Recipe) -> dict:
    """The family's loss terms (bits/dim) of the batch k under ``params``."""
    return families.of(config).loss(params, config, k, key)[1]


@dataclass
class FitOptions:
    """What ``diffc train`` asks of ``fit``."""

    data: list[Path]
    out: Path
    config: Recipe
    steps: int | None = None
    time_limit_s: float | None = None
    resume: bool = False
    seed: int = 0
    val_dir: Path | None = None
    val_crops: int = 256
    val_every_s: float = 300.0
    checkpoint_every_s: float = 300.0
    command: str = ""
    extra_card: dict[str, Any] = field(default_factory=dict)
    init: Path | None = None  # a model card: start from its weights, step and history
    resume_point: Path | None = None  # a compact resume point: started from if OUT has no run, kept current


def _same_network(a: Recipe, b: Recipe) -> bool:
    """Whether two configs differ at most in their training recipe (crop, batch, rates), which a
    re-warmed optimiser may change."""
    recipe = {f.name: getattr(b, f.name) for f in dataclasses.fields(Recipe) if f.name != "name"}
    return type(a) is type(b) and dataclasses.replace(a, **recipe, name=b.name) == b


def _start(opts: FitOptions, state: TrainState, family: families.Family) -> tuple[TrainState, dict[str, Any], str]:
    """The state and run record to train from, and what they came from: the run in OUT
    (``--resume``: exact), else the resume point, else a model's weights (both with the optimiser
    re-warmed), else a fresh initialisation."""
    cfg = opts.config
    fresh = {"images_seen": 0, "wall_time_s": 0.0, "val_history": [], "sessions": 0}
    state_stem = opts.out / "state"
    if opts.resume and checkpoint.card_path(state_stem).is_file():
        state, card = checkpoint.load_state(state_stem, state)
        if family.config_type.from_dict(card["config"]) != cfg:
            raise ValueError(f"--resume with a different config than {checkpoint.card_path(state_stem)}")
        return state, card["run"], f"run {opts.out}"
    if opts.resume_point is not None and checkpoint.card_path(opts.resume_point).is_file():
        source = checkpoint.card_path(opts.resume_point)
        _check_network(checkpoint.read_card(source), cfg, family, source)
        state, card = checkpoint.load_resume_point(opts.resume_point, state)
        run = card["run"]
    elif opts.init is not None:
        source = checkpoint.card_path(opts.init)
        _check_network(checkpoint.read_card(source), cfg, family, source)
        _, payload, card = checkpoint.load_model(opts.init, family.name)
        params = payload if family.extras is None else payload["params"]
        params = jax.tree.map(jnp.asarray, params)
        state = state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params), step=int(card.get("steps", 0)))
        run = {**fresh, **{k: card[k] for k in ("images_seen", "wall_time_s", "val_history") if k in card}}
        run["segments"] = [{
            "session": 0, "model": card.get("name"), "sha256": card["sha256"], "to_step": int(state.step),
            "images": run["images_seen"], "wall_s": run["wall_time_s"],
        }]
    else:
        return state, fresh, "a fresh initialisation"
    return state, run, str(source)


def _check_network(card: dict[str, Any], cfg: Recipe, family: families.Family, source: Path) -> None:
    """Refuse a checkpoint whose network is not ``cfg``'s (its recipe may differ)."""
    try:
        other = family.config_type.from_dict(card["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source} has no {family.name} config ({exc})") from None
    if not _same_network(other, cfg):
        raise ValueError(f"{source} holds a network of config {other.name!r}, not of config {cfg.name!r}")


@contextmanager
def _stop_on_signals() -> Iterator[Callable[[], bool]]:
    """Turn the first SIGINT/SIGTERM into a flag the loop polls (it then saves and stops); a
    second SIGINT interrupts at once."""
    stop = {"flag": False}

    def handler(signum: int, frame: Any) -> None:
        if stop["flag"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop["flag"] = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: stop["flag"]
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def device_description() -> str:
    devs = jax.devices()
    kinds = sorted({d.device_kind for d in devs})
    return f"{len(devs)} x {', '.join(kinds)} ({devs[0].platform}), {jax.process_count()} process(es)"


def fit(opts: FitOptions, report: Callable[[dict[str, Any]], None] = lambda m: None) -> dict[str, Any]:
    """Train until ``opts.steps`` or the time limit or a signal; save; return the model card (on
    process 0; the others save nothing and return an empty dict).

    ``report`` receives a dict per step (``step``, ``bpd``, ``images_per_s``, ...) and per
    validation (``val_bpd``).
    """
    cfg = opts.config
    family = families.of(cfg)
    if family.needs_validation and opts.val_dir is None:
        raise ValueError(f"a {family.name} model is saved with losses measured on validation images: give --val DIR")
    n_proc, proc = jax.process_count(), jax.process_index()
    devices = jax.devices()
    if cfg.batch % len(devices):
        raise ValueError(f"batch {cfg.batch} is not divisible by the {len(devices)} devices")
    mesh = Mesh(np.array(devices), ("data",))
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())

    files = data.list_images(opts.data)
    if not files:
        raise ValueError(f"no images in {', '.join(map(str, opts.data))}")
    sampler = data.CropSampler([data.load_image(p) for p in files], cfg.crop, opts.seed, proc)
    state, run, source = _start(opts, create_state(cfg, opts.seed), family)
    opts.out.mkdir(parents=True, exist_ok=True)
    state_stem, model_stem, log_path = opts.out / "state", opts.out / "model", opts.out / "log.jsonl"
    run["sessions"] += 1
    segment = {
        "session": run["sessions"], "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "from": source, "from_step": int(state.step), "device": device_description(), "nice": os.nice(0),
        "crop": cfg.crop, "batch": cfg.batch, "learning_rate": cfg.learning_rate,
    }
    run.setdefault("segments", []).append(segment)
    run.setdefault("cpu_time_s", 0.0)
    state = jax.device_put(state, replicated)

    val = None
    if opts.val_dir is not None:
        val_files = data.list_images([opts.val_dir])
        val = data.fixed_crops([data.load_image(p) for p in val_files], cfg.crop, opts.val_crops)
    step_fn = jax.jit(functools.partial(train_step, config=cfg), donate_argnums=0)
    eval_fn = jax.jit(functools.partial(eval_step, config=cfg))

    def validate() -> float | None:
        if val is None:
            return None
        keys = jax.random.split(jax.random.PRNGKey(1234), 4)
        batches = [val[i : i + VAL_BATCH] for i in range(0, len(val), VAL_BATCH)]
        total = sum(
            len(b) * float(eval_fn(state.ema_params, b, jax.random.fold_in(k, i))["bpd"])
            for k in keys for i, b in enumerate(batches)
        )
        bpd = total / (len(keys) * len(val))
        entry = {
            "step": int(state.step), "images_seen": run["images_seen"], "wall_time_s": run["wall_time_s"],
            "val_bpd": bpd, "session": run["sessions"],
        }
        run["val_history"].append(entry)
        _log(log_path, entry, proc)
        report(entry)
        return bpd

    def save() -> dict[str, Any]:
        if proc != 0:
            return {}
        segment.update(to_step=int(state.step), images=run["images_seen"] - images0,
                       wall_s=round(run["wall_time_s"] - wall0, 1), cpu_s=round(time.process_time() - cpu0, 1))
        run["cpu_time_s"] = round(cpu_before + segment["cpu_s"], 1)
        vh = run["val_history"]
        card = {
            "name": cfg.name,
            "data": data.describe_folders(opts.data),
            "steps": int(state.step),
            "images_seen": run["images_seen"],
            "crop": cfg.crop,
            "batch": cfg.batch,
            "wall_time_s": round(run["wall_time_s"], 1),
            "cpu_time_s": run["cpu_time_s"],
            "sessions": run["segments"],
            "device": device_description(),
            "jax_version": jax.__version__,
            "val_bpd": vh[-1]["val_bpd"] if vh else None,
            "val_set": None if val is None else f"{len(val)} fixed {cfg.crop}x{cfg.crop} crops of {opts.val_dir}",
            "val_history": vh,
            "command": opts.command,
            "parameters": int(sum(np.size(a) for a in jax.tree.leaves(state.params))),
            **opts.extra_card,
        }
        checkpoint.save_state(state_stem, state, {"config": cfg.to_dict(), "run": run})
        if opts.resume_point is not None:
            checkpoint.save_resume_point(opts.resume_point, state, {"config": cfg.to_dict(), "run": run, "command": opts.command})
        payload = family.payload(cfg, jax.device_get(state.ema_params), val)
        return checkpoint.save_model(model_stem, cfg, payload, card)

    total = opts.steps if opts.steps is not None else 2**62
    start = time.monotonic()
    last_val = last_ckpt = last_tick = start
    wall0, images0, cpu0, cpu_before = run["wall_time_s"], run["images_seen"], time.process_time(), run["cpu_time_s"]
    images_since = 0
    with _stop_on_signals() as stopped:
        while int(state.step) < total and not stopped():
            now = time.monotonic()
            if opts.time_limit_s is not None and now - start >= opts.time_limit_s:
                break
            local = sampler.batch(cfg.batch // n_proc, int(state.step))
            k = jax.make_array_from_process_local_data(batch_sharding, local)
            state, metrics = step_fn(state, k)
            metrics = {name: float(v) for name, v in metrics.items()}
            now = time.monotonic()
            run["images_seen"] += cfg.batch
            run["wall_time_s"] = wall0 + now - start
            images_since += cfg.batch
            entry = {"step": int(state.step), "images_seen": run["images_seen"], "wall_time_s": run["wall_time_s"], **metrics}
            if now - last_tick >= 1.0:
                entry["images_per_s"] = images_since / (now - last_tick)
                images_since, last_tick = 0, now
            if int(state.step) % 10 == 0:
                _log(log_path, entry, proc)
            report(entry)
            if now - last_val >= opts.val_every_s:
                validate()
                last_val = time.monotonic()
            if now - last_ckpt >= opts.checkpoint_every_s:
                save()
                last_ckpt = time.monotonic()
        if not run["val_history"] or run["val_history"][-1]["step"] != int(state.step):
            validate()
        return save()


def _log(path: Path, entry: dict[str, Any], proc: int) -> None:
    if proc == 0:
        with path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
