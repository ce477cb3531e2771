"""``diffc train vdm|ardm``: train a model of either family on random crops of image folders."""

import dataclasses
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from diffc.cli.errors import UserError
from diffc.models.configs import FAMILY_CONFIGS

train_app = typer.Typer(
    help="Train the models diffc codes with.", no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _default_val(folders: list[Path]) -> Path | None:
    """A ``val`` folder beside a ``train`` folder among ``folders`` (e.g. cid22/train -> cid22/val)."""
    for f in folders:
        if f.name == "train" and (f.parent / "val").is_dir():
            return f.parent / "val"
    return None


class _Reporter:
    """A rich progress bar on a terminal; otherwise a plain line on stderr every 30 seconds."""

    def __init__(self, total: int | None, time_limit_s: float | None) -> None:
        self.console = Console(stderr=True)
        self.live = self.console.is_terminal
        self.total, self.time_limit_s = total, time_limit_s
        self.rate = 0.0
        self.val = "-"
        self.last_line = 0.0
        self.progress = Progress(
            TextColumn("step {task.completed:>7.0f}"), BarColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=self.console, disable=not self.live,
        )
        self.task = self.progress.add_task("train", total=total, info="")

    def __call__(self, m: dict[str, Any]) -> None:
        if "val_bpd" in m:
            self.val = f"{m['val_bpd']:.4f}"
            if not self.live:
                self.console.print(f"step {m['step']}: validation {self.val} bits/dim")
            return
        self.rate = m.get("images_per_s", self.rate)
        info = f"loss {m['bpd']:.4f} bits/dim  val {self.val}  {self.rate:.1f} images/s"
        self.progress.update(self.task, completed=m["step"], info=info)
        now = time.monotonic()
        if not self.live and now - self.last_line >= 30.0:
            self.console.print(f"step {m['step']}  images {m['images_seen']}  {info}")
            self.last_line = now


def _command(family: str, what: str) -> Callable[..., None]:
    """The ``diffc train FAMILY`` command: the same options and loop for every family."""

    def command(
        data: Annotated[
            list[Path], typer.Option("--data", help="Image folder(s) to crop from: --data DIR [DIR ...].")
        ],
        out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, model card, log.")],
        more_data: Annotated[
            list[Path] | None, typer.Argument(help="More image folders (after --data).", show_default=False)
        ] = None,
        config: Annotated[str, typer.Option("--config", help=f"Model config: {', '.join(FAMILY_CONFIGS[family])}.")] = "small",
        steps: Annotated[int | None, typer.Option("--steps", min=1, help="Stop at this many steps in all.")] = None,
        time_limit: Annotated[
            float | None, typer.Option("--time-limit", min=0.0, help="Stop (and save) after MINUTES.")
        ] = None,
        resume: Annotated[bool, typer.Option(
            "--resume", help="Continue the run in --out (exactly), or, if --out holds none, the --resume-point.")] = False,
        resume_point: Annotated[Path | None, typer.Option(
            "--resume-point", help="A compact resume point (STEM.msgpack + STEM.json, under 16 MiB, optimiser "
            "re-warmed): rewritten at every checkpoint, and started from by --resume when --out holds no run.",
        )] = None,
        init: Annotated[str | None, typer.Option(
            "--init", help="Start a new run from this model's weights (a name or path; its steps and "
            "history carried on, optimiser re-warmed).")] = None,
        batch: Annotated[int | None, typer.Option("--batch", min=1, help="Crops per step (config's).")] = None,
        crop: Annotated[int | None, typer.Option("--crop", min=4, help="Crop side in pixels (config's).")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation and data order.")] = 0,
        val: Annotated[
            Path | None, typer.Option("--val", help="Validation folder (default: a val/ beside a train/).")
        ] = None,
        every: Annotated[
            float, typer.Option("--every", min=0.1, help="Minutes between validations and checkpoints.")
        ] = 5.0,
        coordinator: Annotated[str | None, typer.Option(
            "--coordinator", help="HOST:PORT of process 0 for multi-host runs (not needed under SLURM's srun, "
            "Open MPI's mpirun or a Kubernetes Indexed Job: JAX finds it there).")] = None,
        num_processes: Annotated[int, typer.Option("--num-processes", min=1, help="Hosts in all (with --coordinator).")] = 1,
        process_id: Annotated[int, typer.Option("--process-id", min=0, help="This host's index (with --coordinator).")] = 0,
    ) -> None:
        _train(
            family, data + list(more_data or []), out, config, steps, time_limit, resume, batch, crop, seed,
            val, every, coordinator, num_processes, process_id, resume_point, init,
        )

    command.__doc__ = f"""Train {what} on random crops (with flips) of image folders.

    Saves OUT/model.{{msgpack,json}} (EMA weights and model card) and OUT/state.{{msgpack,json}} every
    few minutes, at the end, at the time limit and on Ctrl-C; --resume continues exactly.

    Example: diffc train {family} --data cid22/train imagenet-sample --out runs/{family} --time-limit 90

    Training that goes on across sessions and machines (start it at the lowest priority, and commit
    the resume point before the session ends):

      nice -n 19 diffc train {family} --data ... --out runs/bg --resume --resume-point models/resume/{family}-small
    """
    return command


def _check_processes(coordinator: str | None, num_processes: int, process_id: int) -> None:
    """Refuse --num-processes and --process-id that cannot describe a run (a usage error)."""
    if coordinator is None and (num_processes, process_id) != (1, 0):
        raise typer.BadParameter("needs --coordinator HOST:PORT too (under srun, mpirun or a Kubernetes "
                                 "Indexed Job, give none of the three)", param_hint="--num-processes/--process-id")
    if process_id >= num_processes:
        raise typer.BadParameter(f"{process_id} is not below --num-processes {num_processes}",
                                 param_hint="--process-id")


def _train(
    family: str, folders: list[Path], out: Path, config: str, steps: int | None, time_limit: float | None,
    resume: bool, batch: int | None, crop: int | None, seed: int, val: Path | None, every: float,
    coordinator: str | None, num_processes: int, process_id: int, resume_point: Path | None = None,
    init: str | None = None,
) -> None:
    import jax

    from diffc.models import checkpoint, configs
    from diffc.runtime.compilation_cache import enable_compilation_cache
    from diffc.models.train import CPU_NOTE, FitOptions, fit
    from diffc.runtime.distributed import join_processes

    _check_processes(coordinator, num_processes, process_id)
    try:
        join_processes(coordinator, num_processes, process_id, os.environ)
    except (RuntimeError, ValueError) as exc:  # no coordinator found, or none answered
        raise UserError(f"joining the other processes failed (jax.distributed.initialize: {exc})") from None
    enable_compilation_cache()
    for f in folders:
        if not f.is_dir():
            raise UserError(f"--data {f} is not a folder")
    if steps is None and time_limit is None:
        raise UserError("give --steps N or --time-limit MINUTES (or both)")
    try:
        cfg = configs.get_config(config, family)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    cfg = dataclasses.replace(cfg, batch=batch or cfg.batch, crop=crop or cfg.crop)
    if init is not None and resume:
        raise UserError("--init starts a new run; it cannot be combined with --resume")
    has_point = resume_point is not None and checkpoint.card_path(resume_point).is_file()
    if resume and not (out / "state.json").is_file() and not has_point:
        raise UserError(f"--resume: no training state in {out} (state.json)"
                        + (f" and no resume point {checkpoint.card_path(resume_point)}" if resume_point else ""))
    if not resume and (out / "state.json").exists():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if not resume and has_point:
        raise UserError(f"resume point {checkpoint.card_path(resume_point)} exists; pass --resume to continue it")
    init_path = None
    if init is not None:
        from diffc.models import registry

        try:
            init_path = registry.resolve(init, family)
        except checkpoint.ModelError as exc:
            raise UserError(str(exc)) from None
    val_dir = val or _default_val(folders)
    cpu = jax.devices()[0].platform == "cpu"
    opts = FitOptions(
        data=folders, out=out, config=cfg, steps=steps,
        time_limit_s=None if time_limit is None else 60.0 * time_limit, resume=resume, seed=seed,
        val_dir=val_dir, val_every_s=60.0 * every, checkpoint_every_s=60.0 * every,
        command=shlex.join(["diffc", *sys.argv[1:]]), extra_card={"note": CPU_NOTE} if cpu else {},
        init=init_path, resume_point=resume_point,
    )
    reporter = _Reporter(steps, opts.time_limit_s)
    try:
        with reporter.progress:
            card = fit(opts, reporter)
    except (ValueError, checkpoint.ModelError) as exc:
        raise UserError(str(exc)) from None
    if not card:  # a process other than 0 of a multi-host run: process 0 saved and says so
        return
    typer.echo(
        f"saved {out / 'model.msgpack'}: step {card['steps']}, {card['images_seen']} images, "
        f"validation {card['val_bpd'] if card['val_bpd'] is None else round(card['val_bpd'], 4)} bits/dim",
        err=True,
    )


train_app.command("vdm")(_command("vdm", "a VDM prior (the lossy and bits-back coders' model)"))
train_app.command("ardm")(_command("ardm", "an order-agnostic ARDM (the per-image lossless coder's model)"))
