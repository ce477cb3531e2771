"""``diffc eval rd``: the classical sweeps, the four outputs, resuming, and diffc's coders by mode."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from diffc.cli.main import main
from diffc.codec import ardm as codec_ardm
from diffc.evaluation import baselines, contenders, metrics, runner
from helpers import sample_photo

# Three 32x48 crops of the shipped sample photo (top, left), each with a sweep of JPEG qualities
# that rises in both rate and PSNR and spans 2-3 bpp (mean_psnr_at interpolates between them).
CROPS = {"basil": (40, 80), "tomato": (150, 110), "tomatoes": (200, 20)}
NAMES = tuple(sorted(CROPS))


def crop(name: str, height: int, width: int) -> np.ndarray:
    """A ``height`` x ``width`` crop of the shipped sample photo at the corner ``CROPS[name]``."""
    top, left = CROPS[name]
    return sample_photo()[top : top + height, left : left + width].copy()


def centre_crop(path: Path, height: int, width: int) -> np.ndarray:
    """The central ``height`` x ``width`` crop of the image at ``path``."""
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"))
    top, left = (pixels.shape[0] - height) // 2, (pixels.shape[1] - width) // 2
    return pixels[top : top + height, left : left + width].copy()


def tiny_set(folder: Path) -> Path:
    folder.mkdir()
    for name in NAMES:
        Image.fromarray(crop(name, 32, 48)).save(folder / f"{name}.png")
    return folder


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def by_pair(results: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in results["points"]:
        pairs.setdefault((p["image"], p["codec"]), []).append(p)
    return pairs


@pytest.mark.parametrize("photos", ["sample", "kodak"])
@pytest.mark.parametrize("name", [c.name for c in baselines.CLASSICAL.values() if not c.lossless])
def test_classical_sweeps_rise_in_rate_and_psnr(name, photos, request):
    # On photos of the size the grids were chosen for (on much smaller ones WebP's PSNR can dip
    # between neighbouring qualities; the analysis keeps each image's Pareto front for that): the
    # shipped 256x256 sample photo always, and the 256x256 centre crops of two Kodak images when
    # the kodak fixture finds them (skipped, saying why, when it does not).
    codec = baselines.CLASSICAL[name]
    if photos == "sample":
        images = {"sample": sample_photo()}
    else:
        kodak = request.getfixturevalue("kodak")
        images = {n: centre_crop(kodak / f"{n}.png", 256, 256) for n in ("kodim05", "kodim23")}
    for image_name, image in images.items():
        assert image.shape == (256, 256, 3)
        rates, psnrs = [], []
        for target in codec.targets([0.5, 1]):
            data = codec.encode(image, target)
            rates.append(8 * len(data) / 256**2)
            psnrs.append(metrics.psnr(image, codec.decode(data)))
        assert np.all(np.diff(rates) > 0), (image_name, rates)
        assert np.all(np.diff(psnrs) > 0), (image_name, psnrs)
        assert rates[0] < 0.5 and rates[-1] > 2, (image_name, rates)


def test_lossless_codecs_decode_exactly_and_count_their_bits():
    image = runner.EvalImage("basil", crop("basil", 40, 56), "")
    for codec in (c for c in baselines.CLASSICAL.values() if c.lossless):
        (point,) = [runner.measure(codec, image, target) for target in codec.targets([1])]
        assert point["bits_per_dim"] == 8 * len(codec.encode(image.pixels, None)) / (40 * 56 * 3)
        assert 2 < point["bits_per_dim"] < 8
        assert "psnr" not in point


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, int]:
    """One full run on three 48x32 images, shared by the tests that read its outputs."""
    root = tmp_path_factory.mktemp("eval")
    data = tiny_set(root / "tiny")
    out = root / "out"
    code = main(["eval", "rd", "--data", str(data), "--out", str(out), "--bpp", "2,3", "--quiet"])
    return data, out, code


def test_a_run_on_three_tiny_images_writes_all_four_outputs(tiny_run):
    data, out, code = tiny_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["rd.png", "results.csv", "results.json", "summary.md"]
    results = load(out / "results.json")
    assert [i["name"] for i in results["settings"]["images"]] == list(NAMES)
    assert results["versions"]["pillow"] == Image.__version__
    sweep = sum(len(c.targets([2, 3])) for c in baselines.CLASSICAL.values())
    assert len(results["points"]) == 3 * sweep

    # A point measured again by hand: JPEG at quality 50 on the first image.
    image = crop(NAMES[0], 32, 48)
    (point,) = [p for p in results["points"] if p["image"] == NAMES[0] and p["codec"] == "jpeg" and p["target"] == 50]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=50, optimize=True)
    decoded = np.asarray(Image.open(buffer))
    assert point["bytes"] == len(buffer.getvalue())
    assert point["bpp"] == 8 * len(buffer.getvalue()) / (32 * 48)
    assert point["psnr"] == pytest.approx(metrics.psnr(image, decoded), abs=1e-12)
    assert point["ms_ssim"] == pytest.approx(metrics.ms_ssim(image, decoded), abs=1e-12)

    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(results["points"])
    assert float(rows[0]["bpp"]) == results["points"][0]["bpp"]

    with Image.open(out / "rd.png") as plot:
        assert plot.format == "PNG" and plot.size == (1320, 550)


def mean_psnr_at(results: dict[str, Any], codec: str, rate: float) -> float:
    """The set's PSNR at ``rate`` worked out here: per image, linear in log(bpp) between the
    neighbouring points of its (here already monotone) sweep, then the mean over images."""
    values = []
    for name in NAMES:
        points = sorted((p for p in results["points"] if p["image"] == name and p["codec"] == codec),
                        key=lambda p: p["bpp"])
        bpp = np.array([p["bpp"] for p in points])
        assert bpp[0] <= rate <= bpp[-1]
        values.append(np.interp(np.log(rate), np.log(bpp), [p["psnr"] for p in points]))
    return float(np.mean(values))


def test_summary_tables_hold_the_interpolated_means(tiny_run):
    data, out, _ = tiny_run
    results = load(out / "results.json")
    summary = (out / "summary.md").read_text()
    assert f"    diffc eval rd --data {data} --out {out} --bpp 2,3\n" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| jpeg | "))
    assert row == f"| jpeg | {mean_psnr_at(results, 'jpeg', 2):.2f} | {mean_psnr_at(results, 'jpeg', 3):.2f} |"
    png = [p for p in results["points"] if p["codec"] == "png"]
    pooled = sum(8 * p["bytes"] for p in png) / (3 * 32 * 48 * 3)
    assert f"| png | {pooled:.3f} |" in summary
    assert "| jpeg |  | " in summary  # the BD-rate table's diagonal


def test_an_interrupted_run_resumes_where_it_stopped(tiny_run, tmp_path):
    data, finished, _ = tiny_run
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    complete = load(finished / "results.json")
    partial = dict(complete, points=[p for p in complete["points"] if (p["image"], p["codec"]) != (NAMES[2], "avif")])
    (out / "results.json").write_text(json.dumps(partial))

    assert main(["eval", "rd", "--data", str(data), "--out", str(out), "--bpp", "2,3", "--quiet"]) == 0
    resumed = by_pair(load(out / "results.json"))
    before = by_pair(complete)
    assert resumed.keys() == before.keys()
    for pair, points in before.items():
        if pair == (NAMES[2], "avif"):
            assert [p["bytes"] for p in resumed[pair]] == [p["bytes"] for p in points]
        else:
            assert resumed[pair] == points  # kept as they were, timings included: not measured again


def test_other_settings_are_not_overwritten_without_force(tiny_run, tmp_path, capsys):
    data, finished, _ = tiny_run
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    args = ["eval", "rd", "--data", str(data), "--out", str(out), "--bpp", "2,4", "--codecs", "png", "--quiet"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "holds results of other settings (they differ in bpp, codecs)" in err
    assert load(out / "results.json") == load(finished / "results.json")

    assert main([*args, "--force"]) == 0
    assert {p["codec"] for p in load(out / "results.json")["points"]} == {"png"}


def test_a_folder_of_other_files_is_refused(tmp_path, capsys):
    data = tiny_set(tmp_path / "tiny")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["eval", "rd", "--data", str(data), "--out", str(out), "--codecs", "png"]) == 1
    assert "is not empty and holds no results.json" in capsys.readouterr().err


def test_a_model_without_a_registered_coder_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(contenders, "DIFFC_CODERS", {})
    data = tiny_set(tmp_path / "tiny")
    out = tmp_path / "out"
    assert main(["eval", "rd", "--data", str(data), "--out", str(out), "--model", "vdm-small"]) == 1
    err = capsys.readouterr().err
    assert err == "diffc: error: no diffc coder of lossy evaluation takes the model vdm-small (a VDM model)\n"
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--method", "flow"], "--model"), (["--codecs", "jpeg,bpg"], "bpg"), (["--modes", "lossy,fast"], "fast"),
     (["--bpp", "0.5,-1"], "positive"), (["--method", "sharp"], "sharp")],
)
def test_bad_options_are_usage_errors(tmp_path, capsys, args, message):
    data = tiny_set(tmp_path / "tiny")
    assert main(["eval", "rd", "--data", str(data), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err


class PosterisingCoder:
    """A stand-in lossy coder for the test of diffc's coders by mode: keeps the top bits of every
    value, the more the higher the target rate, and stores them with zlib."""

    name = "posterise"
    lossless = False
    model_card_hash = "c0ffee"

    def __init__(self, model: str, method: str):
        self.model, self.method = model, method

    def targets(self, bpps):
        return tuple(bpps)

    def encode(self, image, target):
        import zlib

        bits = int(np.clip(round(target), 1, 8))
        return bytes([bits]) + zlib.compress((image >> (8 - bits)).astype(np.uint8).tobytes() + bytes(image.shape[:2]))

    def decode(self, data):
        import zlib

        raw = zlib.decompress(data[1:])
        h, w = raw[-2], raw[-1]
        levels = np.frombuffer(raw[:-2], np.uint8).reshape(h, w, 3)
        return ((levels.astype(np.int32) << (8 - data[0])) + (1 << (7 - data[0]))).astype(np.uint8)

    def settings(self):
        return {"library": "test", "options": {"model": self.model, "method": self.method}, "swept": None}


def test_a_registered_diffc_coder_joins_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(contenders.DIFFC_CODERS, "lossy", lambda model, methods: [PosterisingCoder(model, m) for m in methods])
    data = tiny_set(tmp_path / "tiny")
    out = tmp_path / "out"
    args = ["eval", "rd", "--data", str(data), "--out", str(out), "--modes", "lossy", "--codecs", "jpeg",
            "--bpp", "2,4,6", "--model", "m1", "--method", "ancestral", "--quiet"]
    assert main(args) == 0
    results = load(out / "results.json")
    assert results["versions"]["model_card_hash"] == "c0ffee"
    assert results["settings"]["codecs"]["posterise"]["options"] == {"model": "m1", "method": "ancestral"}
    points = [p for p in results["points"] if p["codec"] == "posterise"]
    assert sorted(p["target"] for p in points) == [2, 2, 2, 4, 4, 4, 6, 6, 6]
    assert "| posterise | " in (out / "summary.md").read_text()
    assert "--model m1 --method ancestral" in results["command"]


def test_lossless_evaluation_codes_both_diffc_streams_exactly_beside_png(tmp_path):
    from diffc.models import checkpoint, configs, vdm

    cfg = configs.get_config("tiny")
    checkpoint.save_model(tmp_path / "tiny", cfg, vdm.init_params(cfg, 0), {"name": "tiny"})
    data = tiny_set(tmp_path / "tiny-set")
    out = tmp_path / "out"
    args = ["eval", "rd", "--data", str(data), "--out", str(out), "--modes", "lossless", "--codecs", "png",
            "--model", str(tmp_path / "tiny.json"), "--jobs", "2", "--quiet"]  # diffc's coders in workers too
    assert main(args) == 0
    points = {(p["codec"], p["image"]): p for p in load(out / "results.json")["points"]}
    assert {c for c, _ in points} == {"png", "diffc-lossless-vdm", "diffc-lossless-diffc"}
    for (codec, _), p in points.items():
        assert p["bits_per_dim"] == pytest.approx(p["bytes"] * 8 / (32 * 48 * 3))
        if codec == "diffc-lossless-vdm":
            assert 0 < p["ideal_bits_per_dim"] < p["bits_per_dim"]
    assert "diffc-lossless-vdm" in (out / "summary.md").read_text()


def test_an_ardm_model_is_evaluated_by_the_ardm_coder_alone(tmp_path, capsys):
    from diffc.models import ardm_network, checkpoint, configs

    cfg = configs.get_config("tiny", "ardm")
    payload = {"params": ardm_network.init_params(cfg, 0), "loss_curve": np.linspace(8.0, 3.0, 33)}
    checkpoint.save_model(tmp_path / "ardm", cfg, payload, {"name": "ardm"})
    data = tiny_set(tmp_path / "tiny-set")
    out = tmp_path / "out"
    args = ["eval", "rd", "--data", str(data), "--out", str(out), "--modes", "lossless", "--codecs", "png",
            "--model", str(tmp_path / "ardm.json"), "--quiet"]
    assert main(args) == 0
    points = load(out / "results.json")["points"]
    assert {p["codec"] for p in points} == {"png", "diffc-lossless-ardm"}
    ardm_points = [p for p in points if p["codec"] == "diffc-lossless-ardm"]
    assert len(ardm_points) == len(list(data.iterdir()))
    assert all(p["bits_per_dim"] == pytest.approx(p["bytes"] * 8 / (32 * 48 * 3)) for p in ardm_points)
    prior = codec_ardm.load(tmp_path / "ardm.json")
    for p in ardm_points:  # the model's cost of the stream's order and plan, beside the stream's
        pixels = np.asarray(Image.open(data / f"{p['image']}.png"))
        assert p["ideal_bits_per_dim"] == codec_ardm.encode(pixels, prior).ideal_bits / pixels.size
        assert 0 < p["bits_per_dim"] - p["ideal_bits_per_dim"] < 8 * 100 / pixels.size  # container, rANS tail
    args[args.index("--out") + 1] = str(tmp_path / "out2")
    assert main([*args, "--diffc", "lossless-vdm"]) == 1
    assert "no diffc coder of lossless evaluation takes the model" in capsys.readouterr().err


def test_several_methods_decode_each_lossy_stream_encoded_once(tmp_path, monkeypatch):
    from diffc.codec import lossy
    from diffc.models import checkpoint, configs, vdm

    cfg = configs.get_config("tiny")
    checkpoint.save_model(tmp_path / "tiny", cfg, vdm.init_params(cfg, 0), {"name": "tiny"})
    encodes = []
    real_encode = lossy.encode
    monkeypatch.setattr(lossy, "encode", lambda image, *a, **k: encodes.append(image.shape) or real_encode(image, *a, **k))
    data = tiny_set(tmp_path / "tiny-set")
    out = tmp_path / "out"
    args = ["eval", "rd", "--data", str(data), "--out", str(out), "--modes", "lossy", "--codecs", "jpeg", "--limit", "1",
            "--bpp", "1", "--model", str(tmp_path / "tiny.json"), "--method", "flow,mean", "--quiet"]
    assert main(args) == 0
    results = load(out / "results.json")
    flow, mean = ([p for p in results["points"] if p["codec"] == name] for name in ("diffc-flow", "diffc-mean"))
    assert len(encodes) == len(flow) == len(mean) == 2  # the target and one above it, each encoded once
    for f, m in zip(flow, mean):
        assert (f["target"], f["bytes"], f["encode_s"], f["kl_bits"]) == (m["target"], m["bytes"], m["encode_s"], m["kl_bits"])
        assert f["psnr"] != m["psnr"] and f["kl_bits"] > 0 and f["steps"] >= 1
    summary = (out / "summary.md").read_text()
    ratio = 8 * flow[0]["bytes"] / flow[0]["kl_bits"]  # one image: the mean is its ratio
    assert "## Reverse channel coding overhead" in summary and f"| diffc-flow | 1 | {ratio:.3f} |" in summary
    assert results["settings"]["method"] == "flow,mean"
    assert "--method flow,mean" in results["command"]
    # one stream decoded from growing prefixes: the first image's at the lowest rate, reusing its
    # encoding; its whole-stream PSNR is the sweep's point, and summary.md shows the curve
    curve = results["progression"]
    assert curve["codec"] == "diffc-flow" and curve["bpp"] == 1 and curve["bytes"] == flow[0]["bytes"]
    assert curve["lengths"][-1] == flow[0]["bytes"] and curve["lengths"] == sorted(set(curve["lengths"]))
    assert len(curve["psnr"]) == len(curve["lengths"]) and curve["psnr"][-1] == pytest.approx(flow[0]["psnr"])
    assert "## Progressive decoding of one stream" in summary


def test_a_parallel_run_measures_what_the_sequential_run_does(tiny_run, tmp_path):
    """Two worker processes, one image each at a time: the same points in the same order (only
    the times differ), each marked with how many images were measured at once."""
    data, out, _ = tiny_run
    parallel = tmp_path / "parallel"
    assert main(["eval", "rd", "--data", str(data), "--out", str(parallel), "--bpp", "2,3", "--jobs", "2", "--quiet"]) == 0
    sequential, results = load(out / "results.json"), load(parallel / "results.json")
    fields = ("image", "codec", "target", "bytes", "psnr", "ms_ssim")
    assert [[p.get(f) for f in fields] for p in results["points"]] == [[p.get(f) for f in fields] for p in sequential["points"]]
    assert {p["jobs"] for p in results["points"]} == {2} and "jobs" not in sequential["points"][0]
    assert "--jobs 2" in results["command"]
    summary = (parallel / "summary.md").read_text()
    assert f"Times of {len(results['points'])} of the {len(results['points'])} points were measured with 2 images" in summary
    assert summary.split("## Codec settings")[1] == (out / "summary.md").read_text().split("## Codec settings")[1]


def test_a_failing_image_in_a_parallel_run_is_reported_and_the_others_kept():
    import functools

    import helpers

    from diffc.evaluation.errors import EvaluationError

    images = [runner.EvalImage("fine", np.zeros((8, 8, 3), np.uint8), "0"),
              runner.EvalImage("tall", np.full((9, 8, 3), 7, np.uint8), "1")]
    rebuild = functools.partial(helpers.raw_codecs, 9)
    results = runner.new_results("test", {}, {}, [])
    saved = []
    with pytest.raises(EvaluationError, match="measuring tall failed in a worker process: ValueError: cannot code 9 rows"):
        runner.run(results, images, rebuild(), [1.0], save=lambda r: saved.append(len(r["points"])),
                   progress=lambda label, done: None, jobs=2, rebuild=rebuild)
    assert [(p["image"], p["jobs"], p["bytes"]) for p in results["points"]] == [("fine", 2, 2 + 8 * 8 * 3)]
    assert saved == [1]
