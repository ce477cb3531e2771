"""``diffc encode`` / ``diffc decode`` end to end with a tiny untrained model saved to disk."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffc import bitstreams
from diffc.cli.main import main
from diffc.models import checkpoint, configs, vdm

FAST = ["--steps", "2", "--chunk-bits", "4", "--margin", "1"]


def save_tiny(folder: Path, seed: int) -> Path:
    cfg = configs.get_config("tiny")
    checkpoint.save_model(folder / "tiny", cfg, vdm.init_params(cfg, seed), {"name": "tiny"})
    return folder / "tiny.json"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec")
    (root / "a").mkdir()
    (root / "b").mkdir()
    model, other = save_tiny(root / "a", 0), save_tiny(root / "b", 1)
    rng = np.random.default_rng(0)
    rgb = np.clip(np.cumsum(rng.normal(size=(10, 14, 3)) * 20, axis=1) + 128, 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(root / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(root / "gray.png")
    assert main(["encode", str(root / "rgb.png"), "--bpp", "16", "-o", str(root / "rgb.dfc"),
                 "--model", str(model), "--quiet", *FAST]) == 0
    assert main(["encode", str(root / "gray.png"), "--bpp", "max", "-o", str(root / "gray.dfc"),
                 "--model", str(model), "--quiet", *FAST]) == 0
    return root, model, other


def run(args, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_encode_stays_within_the_rate_and_decode_writes_the_image(work, capsys):
    root, model, _ = work
    data = (root / "rgb.dfc").read_bytes()
    assert 8 * len(data) <= 16 * 10 * 14
    out = root / "rgb-out.png"
    code, err = run(["decode", root / "rgb.dfc", "-o", out, "--model", model, "--quiet"], capsys)
    assert code == 0, err
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size == (14, 10)


def test_lossless_stream_decodes_exactly_and_grayscale_stays_grayscale(work, capsys):
    root, model, _ = work
    stream, out = root / "gray.dfc", root / "gray-out.png"
    code, err = run(["decode", stream, "-o", out, "--model", model, "--quiet"], capsys)
    assert code == 0, err
    with Image.open(out) as im, Image.open(root / "gray.png") as original:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), np.asarray(original))


def test_lossless_vdm_stream_round_trips_and_is_not_progressive(work, capsys):
    root, model, _ = work
    stream, out = root / "rgb-ll.dfc", root / "rgb-ll.png"
    code, err = run(["encode", root / "rgb.png", "--lossless", "--steps", "3", "-o", stream, "--model", model], capsys)
    assert code == 0, err
    assert "lossless bits-back" in err and "bits/dim" in err
    assert bitstreams.read(stream.read_bytes()).header.mode is bitstreams.Mode.LOSSLESS_VDM
    code, err = run(["decode", stream, "-o", out, "--model", model, "--quiet"], capsys)
    assert code == 0, err
    with Image.open(out) as im, Image.open(root / "rgb.png") as original:
        np.testing.assert_array_equal(np.asarray(im), np.asarray(original))
    code, err = run(["decode", stream, "-o", root / "ll-cut.png", "--max-bytes", "100", "--model", model], capsys)
    assert code == 1 and "not progressive" in err
    cut = root / "ll-cut.dfc"
    cut.write_bytes(stream.read_bytes()[:-5])
    code, err = run(["decode", cut, "-o", root / "ll-cut.png", "--model", model], capsys)
    assert code == 1 and "truncated" in err and err.count("\n") == 1
    assert not (root / "ll-cut.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prior", "vdm", "--bpp", "1"], "the vdm prior codes losslessly only"),
        (["--lossless", "--bpp", "1"], "exclude each other"),
        (["--lossless", "--chunk-bits", "4"], "the vdm prior has no such knobs"),
        (["--bpp", "1", "--steps", "65"], "lie in [1, 64]"),
    ],
    ids=["vdm-lossy", "both-rates", "rcc-knobs", "lossy-steps"],
)
def test_conflicting_options_are_refused(work, capsys, tmp_path, args, message):
    root, model, _ = work
    out = tmp_path / "x.dfc"
    code, err = run(["encode", root / "rgb.png", "-o", out, "--model", model, *args], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err  # a usage error
    assert not out.exists()


def test_a_truncated_stream_decodes_its_complete_chunks_with_a_notice(work, capsys):
    root, model, _ = work
    data = (root / "gray.dfc").read_bytes()  # the steps, then the lossless tail
    container = bitstreams.read(data)
    assert len(container.chunks) >= 2
    cut = root / "cut.dfc"
    cut.write_bytes(data[: container.header_bytes + len(container.chunks[0]) + 1])
    code, err = run(["decode", cut, "-o", root / "cut.png", "--model", model], capsys)
    assert code == 0, err
    assert "truncated" in err and (root / "cut.png").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:10], "truncated"),
        (lambda d: d[:-3] + bytes([d[-3] ^ 0x40]) + d[-2:], "checksum mismatch in chunk 0"),
        (lambda d: b"GIF89a" + d[6:], "not a diffc stream"),
        (lambda d: b"", "the stream is empty"),
    ],
    ids=["header-cut", "bit-flip", "other-format", "empty"],
)
def test_damaged_streams_give_one_line_and_no_output(work, capsys, damage, message):
    root, model, _ = work
    bad, out = root / "bad.dfc", root / "bad.png"
    bad.write_bytes(damage((root / "rgb.dfc").read_bytes()))
    code, err = run(["decode", bad, "-o", out, "--model", model], capsys)
    assert code == 1
    assert err.startswith("diffc: error:") and err.count("\n") == 1 and message in err.lower(), err
    assert not out.exists()


def test_another_model_is_refused(work, capsys):
    root, _, other = work
    out = root / "other.png"
    code, err = run(["decode", root / "rgb.dfc", "-o", out, "--model", other], capsys)
    assert code == 1 and "the stream was made with model tiny" in err
    assert not out.exists()


def test_bad_inputs_give_one_line_and_no_output(work, capsys, tmp_path):
    root, model, _ = work
    out = tmp_path / "x.dfc"
    common = ["--bpp", "1", "-o", out, "--model", model, *FAST]
    code, err = run(["encode", tmp_path / "missing.png", *common], capsys)
    assert code == 1 and "no such file" in err
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    code, err = run(["encode", tmp_path / "junk.png", *common], capsys)
    assert code == 1 and "is not an image" in err
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(tmp_path / "alpha.png")
    code, err = run(["encode", tmp_path / "alpha.png", *common], capsys)
    assert code == 1 and "alpha channel" in err
    code, err = run(["encode", root / "rgb.png", "-o", out, "--model", model], capsys)
    assert code == 2 and "--bpp" in err  # no rate: a usage error
    code, err = run(["encode", root / "rgb.png", *common[:-len(FAST)-2], "--model", tmp_path / "nomodel"], capsys)
    assert code == 1 and "no model" in err
    assert not out.exists()


def test_existing_outputs_are_kept_without_force(work, capsys):
    root, model, _ = work
    out = root / "kept.png"
    out.write_bytes(b"precious")
    code, err = run(["decode", root / "rgb.dfc", "-o", out, "--model", model], capsys)
    assert code == 1 and "pass --force" in err
    assert out.read_bytes() == b"precious"
    code, err = run(["decode", root / "rgb.dfc", "-o", out, "--model", model, "--force", "--quiet"], capsys)
    assert code == 0 and out.read_bytes().startswith(b"\x89PNG")


def test_python_api_decodes_like_the_cli(work, capsys):
    from diffc.codec import decompress

    root, model, _ = work
    out = root / "api-cli.png"
    assert main(["decode", str(root / "rgb.dfc"), "-o", str(out), "--model", str(model), "--quiet"]) == 0
    pixels = decompress((root / "rgb.dfc").read_bytes(), model=str(model))
    with Image.open(out) as im:
        np.testing.assert_array_equal(pixels, np.asarray(im))


def test_python_api_lossless_round_trip(work):
    from diffc.codec import compress, decompress

    root, model, _ = work
    with Image.open(root / "rgb.png") as im:
        rgb = np.asarray(im)[:5, :7]
    data = compress(rgb, lossless=True, model=str(model), steps=2)
    assert bitstreams.read(data).header.mode is bitstreams.Mode.LOSSLESS_VDM
    np.testing.assert_array_equal(decompress(data, model=str(model)), rgb)
    with pytest.raises(ValueError, match="either bpp"):
        compress(rgb, model=str(model))


def test_stats_report_bits_kl_phases_and_memory(work, capsys, tmp_path):
    import json

    root, model, _ = work
    enc, dec = tmp_path / "enc.json", tmp_path / "dec.json"
    code, err = run(["encode", root / "rgb.png", "--bpp", "16", "-o", tmp_path / "s.dfc", "--model", model,
                     "--stats", enc, "--quiet", *FAST], capsys)
    assert code == 0, err
    facts = json.loads(enc.read_text())
    assert facts["bits"] == 8 * (tmp_path / "s.dfc").stat().st_size
    assert facts["kl_bits"] == pytest.approx(sum(s["kl_bits"] for s in facts["steps"]))
    assert set(facts["seconds"]) == {"network", "rcc", "entropy"} and facts["peak_memory_mib"] > 0
    code, err = run(["decode", tmp_path / "s.dfc", "-o", tmp_path / "s.png", "--model", model,
                     "--stats", dec, "--quiet"], capsys)
    assert code == 0, err
    facts = json.loads(dec.read_text())
    assert facts["steps_decoded"] == facts["steps_total"] and facts["peak_memory_mib"] > 0


def test_encoder_decoder_and_info_report_the_same_steps(work, capsys, tmp_path):
    """One count of a lossy stream's steps (the steps t -> s of its grid, step 0 not counted;
    docs/bitstream.md): the encoder's messages, the decoder's, a cut stream's notice and
    ``diffc info`` all give the header's ``steps``."""
    import json
    import re

    root, model, _ = work
    stream = tmp_path / "s.dfc"
    code, err = run(["encode", root / "rgb.png", "--bpp", "12", "-o", stream, "--model", model, "--steps", "3",
                     "--chunk-bits", "4"], capsys)
    assert code == 0, err
    assert "at most 3 steps" in err
    (encoded,) = re.findall(r"bpp, (\d+) steps", err)
    code, err = run(["decode", stream, "-o", tmp_path / "s.png", "--model", model], capsys)
    assert code == 0, err
    (decoded,) = re.findall(r"from (\d+) steps", err)
    assert main(["info", str(stream), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert int(encoded) == int(decoded) == facts["params"]["steps"]
    assert 1 <= facts["params"]["steps"] <= 3
    assert main(["info", str(stream)]) == 0
    assert f"steps={facts['params']['steps']}," in capsys.readouterr().out

    data = (root / "gray.dfc").read_bytes()  # --bpp max: several chunks
    container = bitstreams.read(data)
    assert len(container.chunks) >= 2
    cut = tmp_path / "cut.dfc"
    cut.write_bytes(data[: container.header_bytes + len(container.chunks[0])])
    code, err = run(["decode", cut, "-o", tmp_path / "cut.png", "--model", model, "--stats",
                     tmp_path / "cut.json"], capsys)
    assert code == 0, err
    done, total = map(int, re.findall(r"decoded (\d+) of (\d+) steps", err)[0])
    assert total == container.header.params["steps"] and 0 <= done <= total
    assert f"from {done} steps" in err
    stats = json.loads((tmp_path / "cut.json").read_text())
    assert (stats["steps_decoded"], stats["steps_total"]) == (done, total)


@pytest.mark.parametrize("name", ["p.gif", "p.webp", "frames"])
def test_progression_writes_an_animation_or_a_folder_of_every_prefix(work, capsys, name):
    """--progression: the image at --frames prefix lengths from the header to the whole stream,
    the last frame the full decode; an animation has one frame per length, a folder one PNG each
    (named by its bytes); it refuses -o and --max-bytes, and keeps an existing output without
    --force."""
    root, model, _ = work
    data = (root / "rgb.dfc").read_bytes()
    out = root / name
    code, err = run(["decode", root / "rgb.dfc", "--progression", out, "--frames", 5, "--model", model, "--quiet"], capsys)
    assert code == 0, err
    header_bytes = bitstreams.read(data).header_bytes
    if out.is_dir():
        names = sorted(p.name for p in out.iterdir())
        assert len(names) == 5 and names[0] == f"{header_bytes:09d}.png" and names[-1] == f"{len(data):09d}.png"
        full = root / "full.png"
        assert run(["decode", root / "rgb.dfc", "-o", full, "--model", model, "--quiet", "--force"], capsys)[0] == 0
        with Image.open(out / names[-1]) as last, Image.open(full) as whole:
            assert np.array_equal(np.asarray(last), np.asarray(whole))
    else:
        with Image.open(out) as im:
            assert im.n_frames == 5 and im.size == (14, 10)
    code, err = run(["decode", root / "rgb.dfc", "--progression", out, "--model", model], capsys)
    assert code == 1 and "--force" in err
    for extra in (["-o", root / "x.png"], ["--max-bytes", 100]):
        code, err = run(["decode", root / "rgb.dfc", "--progression", root / "y.gif", *extra, "--model", model], capsys)
        assert code == 2 and "--progression" in err
    gray = root / f"gray-{name}"  # a --bpp max stream: its prefixes are lossy, the whole lossless
    code, err = run(["decode", root / "gray.dfc", "--progression", gray, "--frames", 3, "--model", model, "--quiet"], capsys)
    assert code == 0, err


def test_every_max_bytes_at_or_above_the_header_decodes(work, capsys):
    """Any --max-bytes from the header's end on gives an image; below it, one line saying how
    many bytes the header takes."""
    root, model, _ = work
    data = (root / "rgb.dfc").read_bytes()
    header_bytes = bitstreams.read(data).header_bytes
    for n in (header_bytes, header_bytes + 5, (header_bytes + len(data)) // 2, len(data) - 1):
        out = root / f"cut-{n}.png"
        code, err = run(["decode", root / "rgb.dfc", "--max-bytes", n, "-o", out, "--model", model, "--quiet"], capsys)
        assert code == 0 and out.exists(), err
    code, err = run(["decode", root / "rgb.dfc", "--max-bytes", header_bytes - 1, "-o", root / "no.png",
                     "--model", model], capsys)
    assert code == 1 and f"decodes from {header_bytes} bytes on" in err and not (root / "no.png").exists()
