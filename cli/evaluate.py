"""``diffc eval``: measuring diffc against the classical codecs.

``rd`` sweeps every codec over a folder of images and writes results.json, results.csv, rd.png and
summary.md into one folder, each file atomically; run again with the same settings, it resumes.
With ``--shard I/N`` it measures one shard of the images, and ``merge`` joins the shards' folders
into the four files of the whole run (docs/distributed.md).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from diffc.cli.errors import UserError
from diffc.cli.io import write_bytes
from diffc.evaluation import analysis, baselines, contenders, diffc_modes, report, runner, shards

eval_app = typer.Typer(
    help="Measure diffc against classical codecs.\n\n"
    "Examples:\n\n"
    "  diffc eval rd --data kodak --crop 256 --out results/kodak-256\n\n"
    "  diffc eval merge results/kodak-1 results/kodak-2 --out results/kodak   (shards of --shard 1/2, 2/2)",
    no_args_is_help=True,
)


DEFAULT_MODES = ",".join(contenders.MODES)
DEFAULT_BPP = "0.125,0.25,0.5,1,2"
PROGRESSION_PREFIXES = 10  # prefix lengths of the one stream summary.md shows decoding progressively
DEFAULT_CODECS = ",".join(baselines.FAMILIES)


def _names(text: str, option: str, allowed: tuple[str, ...]) -> list[str]:
    """A comma-separated list of names from ``allowed``, without repeats."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in allowed]
    if not names or unknown:
        raise typer.BadParameter(f"{text!r}: choose from {', '.join(allowed)}", param_hint=option)
    return names


def _rates(text: str) -> list[float]:
    """The target rates of --bpp, increasing."""
    try:
        rates = sorted({float(value) for value in text.split(",")})
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a list of numbers such as 0.25,0.5,1", param_hint="--bpp") from None
    if not all(0 < rate < float("inf") for rate in rates):
        raise typer.BadParameter(f"{text!r}: rates must be positive and finite", param_hint="--bpp")
    return rates


def parse_shard(text: str | None) -> shards.Shard | None:
    """--shard I/N, or None for everything: one parser and one error for every command that shards."""
    if text is None:
        return None
    try:
        return shards.Shard.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None


def _command(data: Path, out: Path, options: dict[str, str | None]) -> str:
    """The command line that reproduces the results, as summary.md records it."""
    parts = ["diffc", "eval", "rd", "--data", str(data), "--out", str(out)]
    for option, value in options.items():
        if value is not None:
            parts += [option, value]
    return shlex.join(parts)


def _stored_results(out: Path, settings: dict[str, Any], versions: dict[str, Any], force: bool) -> dict[str, Any] | None:
    """The results to resume from ``out``, or None to start afresh; refuses to overwrite anything
    else there without --force."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if not out.exists():
        out.mkdir(parents=True)
        return None
    path = out / "results.json"
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            stored = {}
        differs = runner.differences(stored, settings, versions)
        if not differs:
            return None if force else stored
        if not force:
            raise UserError(
                f"{out} holds results of other settings (they differ in {', '.join(differs)}); "
                "pass --force to start over there, or choose another --out"
            )
    elif any(out.iterdir()) and not force:
        raise UserError(f"{out} is not empty and holds no results.json; pass --force to write there, or choose another --out")
    return None


@eval_app.command("rd")
def rd(
    data: Annotated[Path, typer.Option(
        "--data", exists=True, file_okay=False, help="Folder of images (PNG, JPEG, ...), read in name order.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the four outputs.", show_default="results/DATA-CROP")] = None,
    modes: Annotated[str, typer.Option(
        "--modes", help="Evaluations to run, comma-separated: lossy (rate-distortion), lossless (bits/dim).")
    ] = DEFAULT_MODES,
    bpp: Annotated[str, typer.Option(
        "--bpp", help="Target rates in bits per pixel, comma-separated: where PSNR is read and BD-rate spans.")
    ] = DEFAULT_BPP,
    codec_names: Annotated[str, typer.Option(
        "--codecs", help="Classical codecs, comma-separated; jpegxl and webp mean both their lossy and lossless forms.")
    ] = DEFAULT_CODECS,
    crop: Annotated[int | None, typer.Option(
        "--crop", min=11, help="Centre-crop every image to N x N pixels, e.g. --crop 256.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Use only the first N images.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Evaluate diffc's coders too, with this model; without it, the classical codecs only.")
    ] = None,
    method: Annotated[str | None, typer.Option(
        "--method", help="How diffc's lossy coder reconstructs, comma-separated: flow, ancestral, mean; several "
        "decode the same streams (needs --model).", show_default="flow")
    ] = None,
    diffc_names: Annotated[str | None, typer.Option(
        "--diffc", help="Only these of diffc's coders, comma-separated: lossy, lossless-vdm, lossless-diffc, "
        "lossless-ardm (needs --model; an ARDM coder needs an ARDM model).", show_default="all of --modes")
    ] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", min=1, help="Images measured at once, each in its own process; the times then "
        "share the machine.")] = 1,
    shard: Annotated[str | None, typer.Option(
        "--shard", metavar="I/N", help="Only shard I of N (numbered from 1): every N-th image from the I-th, "
        "e.g. one per task of a SLURM array; diffc eval merge joins the shards' --out folders.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Start over in a --out that holds other results.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Rate-distortion and lossless rates of classical codecs (and diffc's, with --model) on a folder of images.

    Writes results.json (every point), results.csv, rd.png and summary.md into --out.

    Run again with the same settings, it resumes: what results.json holds is skipped.

    Examples:

      diffc eval rd --data kodak --crop 256 --out results/kodak-256

      diffc eval rd --data kodak --modes lossless --codecs png,jpegxl --limit 4

      diffc eval rd --data kodak --modes lossless --model default --diffc lossless-ardm,lossless-vdm

      diffc eval rd --data kodak --crop 256 --modes lossy --model default --method flow,ancestral

      diffc eval rd --data kodak --crop 256 --shard 3/4 --out results/kodak-256-3
    """
    mode_list = _names(modes, "--modes", contenders.MODES)
    part = parse_shard(shard)
    rates = _rates(bpp)
    families = _names(codec_names, "--codecs", baselines.FAMILIES)
    methods = _names(method or contenders.METHODS[0], "--method", contenders.METHODS)
    if diffc_names is not None and model is None:
        raise typer.BadParameter("it chooses among diffc's coders; give --model too", param_hint="--diffc")
    if method is not None and model is None:
        raise typer.BadParameter("it chooses how diffc's lossy coder reconstructs; give --model too", param_hint="--method")
    out = out or Path("results") / f"{data.name}{f'-{crop}' if crop else ''}"
    method_name = None if model is None else ",".join(methods)
    command = _command(data, out, {
        "--modes": None if modes == DEFAULT_MODES else ",".join(mode_list),
        "--bpp": None if rates == _rates(DEFAULT_BPP) else ",".join(f"{r:g}" for r in rates),
        "--codecs": None if codec_names == DEFAULT_CODECS else ",".join(families),
        "--crop": None if crop is None else str(crop),
        "--limit": None if limit is None else str(limit),
        "--model": model,
        "--method": method_name,
        "--diffc": diffc_names,
        "--jobs": None if jobs == 1 else str(jobs),
        "--shard": None if part is None else str(part),
    })
    only = None if diffc_names is None else tuple(n.strip() for n in diffc_names.split(",") if n.strip())
    selection = contenders.Selection(tuple(families), tuple(mode_list), model, tuple(methods), only)
    chosen, diffc, notes = selection.build()
    coders: list[contenders.Codec] = [*chosen, *diffc]
    if not coders:
        raise UserError(f"no codec of --codecs {','.join(families)} runs in --modes {','.join(mode_list)}")
    paths = runner.find_images(data, limit)
    if part is not None and part.count > len(paths):
        raise UserError(f"--shard {part}: {data} has {len(paths)} images to measure, too few for {part.count} shards")
    images = [runner.load_image(path, crop) for path in (paths if part is None else part.select(paths))]
    settings = {"images": [image.describe() for image in images], "crop": crop, "limit": limit, "bpp": rates,
                "modes": mode_list, "model": model, "method": method_name,
                "codecs": {c.name: {"lossless": c.lossless, **c.settings()} for c in coders}}
    if part is not None:
        settings["shard"] = part.describe([path.stem for path in paths])
    versions = runner.software_versions(",".join(dict.fromkeys(c.model_card_hash for c in diffc)) or None)
    results = _stored_results(out, settings, versions, force) or runner.new_results(
        command, settings, versions, notes)
    results["command"] = command

    def save(results: dict[str, Any]) -> None:
        write_bytes(out / "results.json", report.results_json(results).encode(), force=True)

    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=quiet) as bar:
        task = bar.add_task("", total=len(images))
        runner.run(results, images, coders, rates, save=save,
                   progress=lambda label, done: bar.update(task, description=label, completed=done),
                   jobs=jobs, rebuild=selection.codecs)
        lossy_diffc = [c for c in diffc if isinstance(c, diffc_modes.LossyCoder) and not c.lossless]
        if lossy_diffc and images and "progression" not in results:
            bar.update(task, description="progressive decoding")
            results["progression"] = {"image": images[0].name, **lossy_diffc[0].progression(
                images[0].pixels, min(rates), PROGRESSION_PREFIXES)}
            save(results)
    _write_outputs(out, results)


def _write_outputs(out: Path, results: dict[str, Any]) -> None:
    """The four outputs of ``results`` into ``out``, and the headline on stdout."""
    write_bytes(out / "results.json", report.results_json(results).encode(), force=True)
    result = analysis.analyse(results)
    write_bytes(out / "results.csv", report.results_csv(results).encode(), force=True)
    write_bytes(out / "rd.png", report.rd_png(result, report.title(results)), force=True)
    write_bytes(out / "summary.md", report.summary_md(results, result).encode(), force=True)
    for line in report.headline(result):
        typer.echo(line)
    typer.echo(f"wrote results.json, results.csv, rd.png and summary.md to {out}")


def _shard_results(folder: Path) -> dict[str, Any]:
    """The results.json a shard's run left in ``folder``."""
    path = folder / "results.json"
    if not path.is_file():
        raise UserError(f"{folder} holds no results.json; give the --out folders of diffc eval rd --shard runs")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{path} is not JSON; run that shard's diffc eval rd again") from None


@eval_app.command("merge")
def merge(
    folders: Annotated[list[Path], typer.Argument(
        metavar="SHARD_DIR", exists=True, file_okay=False, help="The --out folders of every shard's run.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the four outputs of the whole run.")],
    force: Annotated[bool, typer.Option("--force", help="Write into a --out that holds files already.")] = False,
) -> None:
    """Join the results of diffc eval rd --shard I/N runs into those one run over all the images writes.

    The shards must be all N of one run (the same settings, images, model and codecs), each finished.

    Writes results.json, results.csv, rd.png and summary.md into --out, as one run over all the images does.

    Example:

      diffc eval merge results/kodak-1 results/kodak-2 results/kodak-3 --out results/kodak
    """
    if out.resolve() in {folder.resolve() for folder in folders}:
        raise UserError(f"--out {out} is one of the shards; choose another folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"{out} is not empty; pass --force to write there, or choose another --out")
    merged = shards.merge([(str(folder), _shard_results(folder)) for folder in folders], str(out))
    out.mkdir(parents=True, exist_ok=True)
    _write_outputs(out, merged)


LOSSLESS_BASELINES = "png,webp-lossless,jpegxl-lossless"


def _elbo_summary(rows: list[dict[str, Any]], key: str) -> float:
    """Bits/dim over the whole set: every image's bits over every image's dimensions."""
    dims = [row["dims"] for row in rows]
    return sum(row[key] * d for row, d in zip(rows, dims)) / sum(dims)


@eval_app.command("elbo")
def elbo(
    data: Annotated[Path, typer.Option(
        "--data", exists=True, file_okay=False, help="Folder of images, evaluated at full size in name order.")],
    model: Annotated[str, typer.Option("--model", "-m", help="A shipped model's name or a checkpoint path.")] = "default",
    steps: Annotated[int, typer.Option("--steps", min=0, help="Also the T-step discrete ELBO (0: continuous only).")] = 100,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Diffusion times per image (low-discrepancy).")] = 4,
    discrete_only: Annotated[bool, typer.Option(
        "--discrete-only", help="Only the T-step ELBO, at half the network calls (the same values).")] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Times evaluated together (memory).")] = 4,
    codec_names: Annotated[str, typer.Option(
        "--codecs", help="Lossless codecs measured in the same run, comma-separated, or 'none'.")
    ] = LOSSLESS_BASELINES,
    crop: Annotated[int | None, typer.Option("--crop", min=8, help="Centre-crop to N x N (default: full size).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Use only the first N images.")] = None,
    skip: Annotated[int, typer.Option(
        "--skip", min=0, help="Leave out the first N images (their values do not change the others').")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every number here as JSON.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --json.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """The VDM prior's negative ELBO in bits/dim on every image of a folder, beside lossless codecs.

    Prints a table per image and the totals (all bits over all dimensions), with images/s.

    Examples:

      diffc eval elbo --data kodak --json kodak-elbo.json

      diffc eval elbo --data cid22/val --steps 0 --codecs none --limit 8

      diffc eval elbo --data kodak --steps 100 --samples 100 --discrete-only --codecs none
    """
    import time

    from diffc.cli.io import check_writable
    from diffc.evaluation.elbo import image_elbo
    from diffc.models import checkpoint, registry
    from diffc.runtime.compilation_cache import enable_compilation_cache

    if discrete_only and not steps:
        raise UserError("--discrete-only needs --steps above 0")
    lossless = [] if codec_names == "none" else _names(
        codec_names, "--codecs", tuple(n for n, c in baselines.CLASSICAL.items() if c.lossless))
    if json_out is not None:
        check_writable(json_out, force=force)
    enable_compilation_cache()
    card_path = registry.resolve(model, "vdm")
    config, params, card = checkpoint.load_model(card_path, "vdm")
    paths = runner.find_images(data)[skip : skip + limit if limit else None]
    images = [runner.load_image(path, crop) for path in paths]
    if not images:
        raise UserError(f"--skip {skip} leaves no image of {data}")
    rows, start = [], time.perf_counter()
    columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=quiet) as bar:
        task = bar.add_task("", total=len(images))
        for i, image in enumerate(images):
            bar.update(task, description=image.name)
            e = image_elbo(config, params, image.pixels, samples=samples, steps=steps, batch=batch, seed=skip + i,
                           continuous=not discrete_only)
            row = {"image": image.name, "dims": int(image.pixels.size), "prior": e.prior, "recon": e.recon}
            if not discrete_only:
                row.update(elbo=e.continuous, diffusion=e.diffusion)
            if steps:
                row[f"elbo_T{steps}"] = e.discrete
            for name in lossless:
                row[name] = runner.measure(baselines.CLASSICAL[name], image, None)["bits_per_dim"]
            rows.append(row)
            bar.update(task, completed=i + 1)
    seconds = time.perf_counter() - start
    keys = [*([] if discrete_only else ["elbo"]), *([f"elbo_T{steps}"] if steps else []), *lossless]
    totals = {key: _elbo_summary(rows, key) for key in keys}
    typer.echo("| image | " + " | ".join(keys) + " |")
    typer.echo("|---|" + "---|" * len(keys))
    for row in rows:
        typer.echo(f"| {row['image']} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |")
    typer.echo("| **all** | " + " | ".join(f"**{totals[k]:.4f}**" for k in keys) + " |")
    typer.echo(f"{len(rows)} images in {seconds:.0f} s ({len(rows) / seconds:.3f} images/s), bits/dim")
    if json_out is not None:
        report_json = {
            "command": shlex.join(["diffc", "eval", "elbo", "--data", str(data), "--model", model,
                                   "--steps", str(steps), "--samples", str(samples),
                                   *(["--discrete-only"] if discrete_only else []),
                                   *(["--crop", str(crop)] if crop else []), *(["--limit", str(limit)] if limit else []),
                                   *(["--skip", str(skip)] if skip else []),
                                   "--codecs", codec_names]),
            "model": {"name": model, "sha256": card["sha256"], "config": config.name},
            "seconds": seconds, "images_per_s": len(rows) / seconds, "totals": totals, "images": rows,
        }
        write_bytes(json_out, (json.dumps(report_json, indent=2) + "\n").encode(), force=force)
