"""The four outputs of ``diffc eval rd`` as bytes or text: results.json, results.csv, rd.png and
summary.md. Writing them to disk is the caller's job."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from diffc.evaluation import analysis as an
from diffc.evaluation.errors import require
from diffc.evaluation.metrics import MS_SSIM_WEIGHTS

CSV_COLUMNS = ("image", "codec", "lossless", "target", "bytes", "bpp", "bits_per_dim", "psnr", "ms_ssim", "mse",
               "encode_s", "decode_s", "megapixels", "kl_bits", "steps", "jobs")


def _json(value: Any, depth: int) -> str:
    """JSON with the first ``depth`` levels of dicts and lists of dicts spread over lines, the rest on one."""
    pad = " " * (depth + 1)
    if depth < 3 and isinstance(value, dict) and value:
        items = (f"{pad}{json.dumps(k)}: {_json(v, depth + 1)}" for k, v in value.items())
    elif depth < 3 and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = (pad + json.dumps(v, allow_nan=False) for v in value)
    else:
        return json.dumps(value, allow_nan=False)
    brackets = "{}" if isinstance(value, dict) else "[]"
    return brackets[0] + "\n" + ",\n".join(items) + "\n" + " " * depth + brackets[1]


def results_json(results: dict[str, Any]) -> str:
    """results.json, laid out to read and diff well: settings and versions a key per line, one
    image or point per line."""
    return _json(results, 0) + "\n"


def results_csv(results: dict[str, Any]) -> str:
    """results.csv: every point, one row each; empty cells where a column does not apply."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for point in results["points"]:
        writer.writerow({key: "" if point.get(key) is None else point[key] for key in CSV_COLUMNS})
    return buffer.getvalue()


def _plot_range(bpps: Sequence[float]) -> tuple[float, float]:
    return min(bpps) / 1.5, max(bpps) * 1.5


def rd_png(result: an.Analysis, title: str) -> bytes:
    """rd.png: PSNR and MS-SSIM against bpp, one line per lossy codec (the set curves: mean over
    images at each rate), dots at the target rates."""
    figure_module = require("matplotlib.figure")
    figure = figure_module.Figure(figsize=(12, 5), layout="constrained")
    axes = figure.subplots(1, 2)
    low, high = _plot_range(result.bpps)
    for ax, metric, label in ((axes[0], "psnr", "PSNR (dB, RGB)"), (axes[1], "ms_ssim", "MS-SSIM")):
        for codec in result.lossy:
            curve = codec.set_curve(low, high, metric)
            if curve is None:
                continue
            (line,) = ax.plot(*curve, label=codec.name)
            ax.plot(result.bpps, codec.mean(result.bpps, metric), "o", color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set_xticks(result.bpps, [f"{b:g}" for b in result.bpps])
        ax.set_xlim(low, high)
        ax.set_xlabel("bits per pixel (file size, headers included)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if result.lossy:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no lossy codecs in this run", ha="center", transform=ax.transAxes)
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _number(value: float | None, digits: int, *, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def title(results: dict[str, Any]) -> str:
    """What was measured, in a line: the number of images and their size."""
    images = results["settings"]["images"]
    crop = results["settings"]["crop"]
    size = f"{crop}x{crop} centre crops" if crop else "full size"
    return f"{len(images)} image{'s' * (len(images) != 1)}, {size}"


def _versions_line(versions: dict[str, Any]) -> str:
    v = versions
    return (f"diffc {v['diffc']}; Pillow {v['pillow']} (libjpeg-turbo {v['libjpeg-turbo']}, libwebp {v['libwebp']}, "
            f"libavif {v['libavif']}, zlib {v['zlib']}); imagecodecs {v['imagecodecs']} (libjxl {v['libjxl']}, "
            f"CharLS {v['charls']}); numpy {v['numpy']}, scipy {v['scipy']}; measured on {v['cpu']}.")


def _model_line(settings: dict[str, Any], versions: dict[str, Any]) -> str:
    if settings["model"] is None:
        return "Classical codecs only (no `--model`): diffc's coders join as they land."
    return (f"diffc model `{settings['model']}` (model card hash {versions['model_card_hash']}), "
            f"reconstruction `{settings['method']}`.")


def _overhead(results: dict[str, Any], bpps: Sequence[float]) -> list[str]:
    """The reverse channel coding overhead of diffc's lossy points: coded bits (header and side
    information included) over the sum of the steps' KL, the mean over images at each target."""
    points = [p for p in results["points"] if p.get("kl_bits") and p["target"] in bpps]
    codecs = list(dict.fromkeys(p["codec"] for p in points))
    if not codecs:
        return []
    rows = []
    for codec in codecs:
        ratios = [[8 * p["bytes"] / p["kl_bits"] for p in points if p["codec"] == codec and p["target"] == b] for b in bpps]
        images = len({p["image"] for p in points if p["codec"] == codec})
        rows.append([codec, str(images)] + [_number(sum(r) / len(r), 3) if r else "-" for r in ratios])
    return ["", "## Reverse channel coding overhead", "",
            "Coded bits (the whole stream) over the sum of the steps' KL, mean over the images whose points "
            "record the KL at each target.", "",
            *_table(["codec", "images"] + [f"{b:g} bpp" for b in bpps], rows)]


def summary_md(results: dict[str, Any], result: an.Analysis) -> str:
    """summary.md: the tables README shows, how they were made, and the command that made them."""
    settings, bpps = results["settings"], result.bpps
    rate_header = ["codec"] + [f"{b:g} bpp" for b in bpps]
    lines = [f"# Rate-distortion evaluation: {title(results)}", "", "Made by", "", f"    {results['command']}", "",
             _model_line(settings, results["versions"]), _versions_line(results["versions"]), ""]
    if result.lossy:
        lines += ["## PSNR (dB) at the target rates", "",
                  "Mean over the images of each image's RGB PSNR at the rate; - where some image's sweep does not "
                  "reach it.", ""]
        lines += _table(rate_header, [[c.name] + [_number(v, 2) for v in c.mean(bpps, "psnr")] for c in result.lossy])
        lines += ["", "## MS-SSIM at the target rates", ""]
        lines += _table(rate_header, [[c.name] + [_number(v, 4) for v in c.mean(bpps, "ms_ssim")]
                                      for c in result.lossy])
        names = [c.name for c in result.lossy]
        bd = result.bd_rates()
        lines += ["", "## BD-rate (%)", "",
                  f"Rate of the row's codec against the column's at equal PSNR, between {min(bpps):g} and "
                  f"{max(bpps):g} bpp: negative means the row needs fewer bits.", ""]
        lines += _table(["codec"] + [f"vs {n}" for n in names],
                        [[t] + ["" if t == a else _number(bd[t, a], 1, sign=True) for a in names] for t in names])
        lines += _overhead(results, bpps)
        lines += _progression(results.get("progression"))
        lines += ["", "## Speed of the lossy codecs", "", "Seconds per megapixel, over every point of the sweep.", ""]
        lines += _table(["codec", "encode s/MP", "decode s/MP"],
                        [[c.name, _number(c.encode_s_per_mp, 3), _number(c.decode_s_per_mp, 3)] for c in result.lossy])
        lines.append("")
    if result.lossless:
        lines += ["## Lossless", "", "Bits per subpixel over the whole set (all bits over all subpixels).", ""]
        lines += _table(["codec", "bits/dim", "encode s/MP", "decode s/MP"],
                        [[c.name, _number(c.bits_per_dim, 3), _number(c.encode_s_per_mp, 3),
                          _number(c.decode_s_per_mp, 3)] for c in result.lossless])
        lines.append("")
    shared = sorted({p["jobs"] for p in results["points"] if p.get("jobs", 1) > 1})
    if shared:
        lines += [f"Times of {sum(p.get('jobs', 1) > 1 for p in results['points'])} of the "
                  f"{len(results['points'])} points were measured with {' or '.join(map(str, shared))} images coded "
                  "at once (`--jobs`), sharing the machine.", ""]
    lines += ["## Codec settings", ""]
    lines += _table(["codec", "library", "swept", "options"],
                    [[name, s["library"], _swept(s["swept"]), _options(s["options"])]
                     for name, s in settings["codecs"].items()])
    lines += ["", "## How the numbers are made", "", *METHOD_NOTES]
    lines += [f"- {note}" for note in results["notes"]]
    lines += ["", *_per_image(result)]
    return "\n".join(lines).rstrip() + "\n"


def _progression(curve: dict[str, Any] | None) -> list[str]:
    """The section on one stream decoded from growing prefixes (``LossyCoder.progression``)."""
    if not curve:
        return []
    lines = ["", "## Progressive decoding of one stream", "",
             f"{curve['codec']}'s stream of {curve['image']} at {curve['bpp']:g} bpp ({curve['bytes']} bytes), "
             "decoded from prefixes evenly spaced from the header's end to the whole stream: any prefix "
             "that holds the header decodes.", ""]
    return lines + _table(["bytes", "% of the stream", "PSNR (dB)"],
                          [[str(n), _number(100 * n / curve["bytes"], 1), _number(p, 2)]
                           for n, p in zip(curve["lengths"], curve["psnr"])])


def _swept(swept: dict[str, list[float]] | None) -> str:
    if swept is None:
        return "-"
    return "; ".join(f"{key} {', '.join(f'{v:g}' for v in values)}" for key, values in swept.items())


def _options(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items()) or "-"


METHOD_NOTES = [
    "- Rates are bits per pixel (bits over height x width) of the complete files the codecs write, headers "
    "and containers included; lossless rates are bits per subpixel (bits/dim).",
    "- PSNR is over the RGB values together (one MSE per image, peak 255). MS-SSIM is Wang et al. (2003): 5 "
    f"scales weighted {MS_SSIM_WEIGHTS}, 11x11 Gaussian window of sigma 1.5, computed per channel and "
    "averaged; images with a short side under 161 pixels use the scales that hold an 11x11 window, with "
    "the weights rescaled to sum to 1.",
    "- Each lossy codec is swept over the grid above on every image. Its curve on an image is the Pareto "
    "front of those points; the value at a rate is interpolated linearly in log(bpp) between the two "
    "neighbouring points of that image, never extrapolated. The set's value is the mean over images of "
    "these per-image values (so PSNR over the set is the mean of per-image PSNRs).",
    "- The plot and BD-rate use the set curve: that mean as a function of rate, over the rates every "
    "image reaches. BD-rate integrates log-rate over the PSNR range two curves share, with a monotone "
    "piecewise-cubic (pchip) fit of 64 log-spaced samples of each curve.",
    "- Seconds per megapixel: all encode (decode) time of a codec over all the megapixels it coded, "
    "one process on a shared machine, so a rough guide only.",
]


def _per_image(result: an.Analysis) -> list[str]:
    lines = []
    if result.lossy:
        rates = " / ".join(f"{b:g}" for b in result.bpps)
        per_codec = {c.name: c.per_image(result.bpps, "psnr") for c in result.lossy}
        lines += ["## Per image", "", f"PSNR (dB) at {rates} bpp.", ""]
        lines += _table(["image"] + list(per_codec),
                        [[image] + [" / ".join(_number(v, 1) for v in values[image]) for values in per_codec.values()]
                         for image in result.images])
        lines.append("")
    if result.lossless:
        lines += ["Lossless bits/dim.", ""]
        lines += _table(["image"] + [c.name for c in result.lossless],
                        [[image] + [_number(c.per_image.get(image), 3) for c in result.lossless]
                         for image in result.images])
    return lines


def headline(result: an.Analysis) -> list[str]:
    """A few lines for the terminal: PSNR at the target rates and lossless bits/dim."""
    lines = [f"{c.name:16s} PSNR " + " ".join(f"{_number(v, 2):>6s}" for v in c.mean(result.bpps, "psnr"))
             + f"  dB at {', '.join(f'{b:g}' for b in result.bpps)} bpp" for c in result.lossy]
    lines += [f"{c.name:16s} {c.bits_per_dim:.3f} bits/dim" for c in result.lossless]
    return lines

