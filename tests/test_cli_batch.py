"""``diffc encode DIR -o OUTDIR`` and ``diffc decode DIR -o OUTDIR``, whole or in shards
(``--shard I/N``, as ``diffc eval rd`` takes it), with a tiny untrained model saved to disk."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffc.cli.main import main
from diffc.models import checkpoint, configs, vdm

NAMES = ("a", "b", "c")
LOSSLESS = ["--lossless", "--steps", "2"]


def run(args, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def one_line(err: str) -> bool:
    return err.startswith("diffc: error: ") and err.count("\n") == 1


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder of three images, a tiny model, and the images coded and decoded back in two shards
    each, into one output folder as the tasks of a job array do."""
    root = tmp_path_factory.mktemp("batch")
    cfg = configs.get_config("tiny")
    checkpoint.save_model(root / "tiny", cfg, vdm.init_params(cfg, 0), {"name": "tiny"})
    model = root / "tiny.json"
    (root / "photos").mkdir()
    rng = np.random.default_rng(0)
    for name in NAMES:
        pixels = np.clip(np.cumsum(rng.normal(size=(10, 14, 3)) * 20, axis=1) + 128, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "photos" / f"{name}.png")
    logs = {}
    for step, folder, out in (("encode", "photos", "coded"), ("decode", "coded", "decoded")):
        extra = LOSSLESS if step == "encode" else []
        for shard in ("1/2", "2/2"):
            code = main([step, str(root / folder), "-o", str(root / out), "--shard", shard, "--model", str(model),
                         *extra])
            assert code == 0, (step, shard)
            logs[step, shard] = sorted(path.name for path in (root / out).iterdir())
    return root, model, logs


def test_shards_are_disjoint_and_together_code_every_image(work):
    _, _, logs = work
    first, both = logs["encode", "1/2"], logs["encode", "2/2"]
    assert first == ["a.dfc", "c.dfc"]  # every 2nd image from the 1st, in name order
    assert both == ["a.dfc", "b.dfc", "c.dfc"]
    assert logs["decode", "1/2"] == ["a.png", "c.png"] and logs["decode", "2/2"] == ["a.png", "b.png", "c.png"]


def test_lossless_batch_decodes_every_image_exactly(work):
    root, _, _ = work
    for name in NAMES:
        with Image.open(root / "decoded" / f"{name}.png") as out, Image.open(root / "photos" / f"{name}.png") as im:
            np.testing.assert_array_equal(np.asarray(out), np.asarray(im))


def test_a_line_per_image_and_a_summary(work, capsys, tmp_path):
    root, model, _ = work
    code, err = run(["encode", root / "photos", "-o", tmp_path / "all", "--model", model, *LOSSLESS], capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert "lossless bits-back of 3 images of" in lines[0] and "with tiny, 2 steps" in lines[0]
    for i, name in enumerate(NAMES, 1):
        assert lines[i].startswith(f"diffc: [{i}/3] {name}.png -> {name}.dfc: ")
        assert lines[i].endswith(" s") and " bytes, " in lines[i] and " bpp, " in lines[i]
    total = sum((tmp_path / "all" / f"{name}.dfc").stat().st_size for name in NAMES)
    assert lines[4].startswith(f"diffc: wrote 3 streams to {tmp_path / 'all'}: {total} bytes, ")
    assert len(lines) == 5
    code, err = run(["decode", tmp_path / "all", "-o", tmp_path / "back", "--model", model, "--quiet"], capsys)
    assert code == 0 and err == ""
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["a.png", "b.png", "c.png"]


def test_existing_outputs_are_refused_before_any_work(work, capsys):
    root, model, _ = work
    before = (root / "coded" / "a.dfc").read_bytes()
    code, err = run(["encode", root / "photos", "-o", root / "coded", "--shard", "1/2", "--model", model,
                     *LOSSLESS], capsys)
    assert code == 1 and one_line(err) and "coded/a.dfc exists; pass --force" in err, err
    assert (root / "coded" / "a.dfc").read_bytes() == before
    code, err = run(["decode", root / "coded", "-o", root / "decoded", "--model", model], capsys)
    assert code == 1 and one_line(err) and "decoded/a.png exists; pass --force" in err, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["encode", "photos/a.png", "--lossless", "--shard", "1/2"], "--shard splits a folder of images"),
        (["decode", "coded/a.dfc", "--shard", "1/2"], "--shard splits a folder of streams"),
        (["encode", "photos", "--lossless", "--shard", "1/0"], "--shard"),
        (["encode", "photos", "--lossless", "--shard", "two"], "'two' is not I/N"),
        (["decode", "coded", "-o", "x", "--shard", "3/2"], "numbered 1 to N"),
        (["encode", "photos", "--lossless"], "-o/--output OUTDIR"),
        (["decode", "coded", "-o", "-"], "-o/--output OUTDIR"),
        (["encode", "photos", "--lossless", "-o", "x", "--stats", "s.json"], "--stats"),
    ],
    ids=["shard-image", "shard-stream", "shard-zero", "shard-text", "shard-past-n", "no-output", "stdout",
         "stats"],
)
def test_usage_errors_are_one_line_and_exit_2(work, capsys, args, message):
    root, _, _ = work
    args = [root / a if a.split("/")[0] in ("photos", "coded") else a for a in args]
    code, err = run(args, capsys)
    assert code == 2 and one_line(err) and message in err, err
    assert not (root / "x").exists()


def test_more_shards_than_images_are_refused(work, capsys, tmp_path):
    root, model, _ = work
    code, err = run(["encode", root / "photos", "-o", tmp_path / "o", "--shard", "4/4", "--model", model,
                     *LOSSLESS], capsys)
    assert code == 1 and one_line(err) and "has 3 files to code, too few for 4 shards" in err, err


def test_an_unreadable_image_is_named_and_leaves_no_stream(work, capsys, tmp_path):
    root, model, _ = work
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    (photos / "0-broken.png").write_bytes(b"not an image at all")
    (photos / "a.png").write_bytes((root / "photos" / "a.png").read_bytes())
    code, err = run(["encode", photos, "-o", out, "--model", model, "--quiet", *LOSSLESS], capsys)
    assert code == 1 and one_line(err) and f"{photos / '0-broken.png'} is not an image" in err, err
    assert list(out.iterdir()) == []  # neither a stream nor a temporary file


def test_a_damaged_stream_is_named(work, capsys, tmp_path):
    root, model, _ = work
    streams = tmp_path / "streams"
    streams.mkdir()
    (streams / "b.dfc").write_bytes((root / "coded" / "b.dfc").read_bytes()[:-3])
    code, err = run(["decode", streams, "-o", tmp_path / "out", "--model", model, "--quiet"], capsys)
    assert code == 1 and one_line(err) and f"{streams / 'b.dfc'}: " in err, err
    assert list((tmp_path / "out").iterdir()) == []


def test_name_clashes_and_empty_folders_are_refused(work, capsys, tmp_path):
    root, model, _ = work
    (tmp_path / "a.png").write_bytes((root / "photos" / "a.png").read_bytes())
    Image.open(tmp_path / "a.png").save(tmp_path / "a.bmp")
    code, err = run(["encode", tmp_path, "-o", tmp_path / "o", "--model", model, *LOSSLESS], capsys)
    assert code == 1 and one_line(err) and "would both be written to" in err, err
    code, err = run(["decode", tmp_path, "-o", tmp_path / "o", "--model", model], capsys)
    assert code == 1 and one_line(err) and "holds no .dfc streams" in err, err
