"""``diffc eval rd --shard I/N`` and ``diffc eval merge``: shards of a run merge into the very files
the run writes alone, and what cannot be merged is refused on one line."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from diffc.cli.main import main
from diffc.evaluation import baselines, runner, shards

NAMES = ("a", "b", "c")  # three images: shards of 2 and 1
ARGS = ["--codecs", "png,jpeg,webp", "--bpp", "2,3", "--quiet"]  # lossy and lossless, the quickest codecs


def image_set(folder: Path) -> Path:
    """Three smooth random 48x32 PNGs."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in NAMES:
        base = rng.integers(0, 256, (5, 7, 3)).astype(np.uint8)
        Image.fromarray(base).resize((48, 32), Image.BICUBIC).save(folder / f"{name}.png")
    return folder


def rd(data: Path, out: Path, *extra: str) -> int:
    return main(["eval", "rd", "--data", str(data), "--out", str(out), *ARGS, *extra])


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "results.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> SimpleNamespace:
    """One run over the set, the same as shards 1/2 and 2/2, and their merge; a clock that ticks
    one second per reading makes every time measured, and so every output, deterministic."""
    root = tmp_path_factory.mktemp("shards")
    folders = SimpleNamespace(data=image_set(root / "data"), single=root / "single", one=root / "one",
                              two=root / "two", merged=root / "merged")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "time", SimpleNamespace(perf_counter=itertools.count().__next__))
        assert rd(folders.data, folders.single) == 0
        assert rd(folders.data, folders.one, "--shard", "1/2") == 0
        assert rd(folders.data, folders.two, "--shard", "2/2") == 0
    assert main(["eval", "merge", str(folders.two), str(folders.one), "--out", str(folders.merged)]) == 0
    return folders


def test_shards_take_every_nth_image(runs):
    assert [i["name"] for i in load(runs.one)["settings"]["images"]] == ["a", "c"]
    assert [i["name"] for i in load(runs.two)["settings"]["images"]] == ["b"]
    assert load(runs.two)["settings"]["shard"] == {
        "index": 2, "count": 2, "images": 3, "names_sha256": shards.names_sha256(NAMES)}
    assert "--shard 2/2" in load(runs.two)["command"]


def test_merged_shards_are_the_single_run(runs):
    single, merged = load(runs.single), load(runs.merged)
    assert merged["command"] == single["command"].replace(str(runs.single), str(runs.merged))
    assert {**merged, "command": None} == {**single, "command": None}
    codecs = ("jpeg", "webp", "png", "webp-lossless")
    assert list(dict.fromkeys(p["codec"] for p in merged["points"])) == list(codecs)
    assert len(merged["points"]) == 3 * sum(len(baselines.CLASSICAL[name].targets([2, 3])) for name in codecs)
    for name in ("results.csv", "rd.png"):
        assert (runs.merged / name).read_bytes() == (runs.single / name).read_bytes(), name
    summary = (runs.single / "summary.md").read_text().replace(str(runs.single), str(runs.merged))
    assert (runs.merged / "summary.md").read_text() == summary


@pytest.mark.parametrize("shard", ["0/2", "3/2", "-1/2", "1/0", "2", "a/2", "1/2/3", ""])
def test_bad_shards_are_usage_errors(runs, tmp_path, capsys, shard):
    assert rd(runs.data, tmp_path / "out", "--shard", shard) == 2
    assert f"'{shard}'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_more_shards_than_images_is_an_error(runs, tmp_path, capsys):
    assert rd(runs.data, tmp_path / "out", "--shard", "4/4") == 1
    assert capsys.readouterr().err == f"diffc: error: --shard 4/4: {runs.data} has 3 images to measure, too few for 4 shards\n"


def copy(folder: Path, to: Path, edit=lambda results: results) -> Path:
    """A copy of a shard's results.json, edited."""
    to.mkdir()
    (to / "results.json").write_text(json.dumps(edit(load(folder))))
    return to


def unfinished(results: dict[str, Any]) -> dict[str, Any]:
    return {**results, "points": [p for p in results["points"] if (p["image"], p["codec"]) != ("c", "jpeg")]}


def other_rates(results: dict[str, Any]) -> dict[str, Any]:
    return {**results, "settings": {**results["settings"], "bpp": [1, 2]}}


def other_set(results: dict[str, Any]) -> dict[str, Any]:
    shard = {**results["settings"]["shard"], "names_sha256": shards.names_sha256(["a", "b", "d"])}
    return {**results, "settings": {**results["settings"], "shard": shard}}


@pytest.mark.parametrize(("shards_of", "message"), [
    (lambda r, t: [r.one], "shard 2/2 missing: merge needs all 2 shards"),
    (lambda r, t: [r.one, r.two, copy(r.one, t / "again")], "are both shard 1/2; give each shard once"),
    (lambda r, t: [copy(r.one, t / "part", unfinished), r.two],
     "is unfinished (1 image and codec pairs not measured, c under jpeg first): run its diffc eval rd again"),
    (lambda r, t: [copy(r.one, t / "other", other_rates), r.two], "are shards of different runs (they differ in bpp)"),
    (lambda r, t: [copy(r.one, t / "other", other_set), r.two], "are shards of different runs (they differ in shard)"),
    (lambda r, t: [r.single, r.two], "holds no shard of diffc eval rd --shard I/N; nothing to merge there"),
    (lambda r, t: [r.one, t], "holds no results.json; give the --out folders of diffc eval rd --shard runs"),
])
def test_merge_refuses_what_is_not_all_shards_of_one_finished_run(runs, tmp_path, capsys, shards_of, message):
    folders = [str(folder) for folder in shards_of(runs, tmp_path)]
    assert main(["eval", "merge", *folders, "--out", str(tmp_path / "merged")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("diffc: error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "merged").exists()


def test_merge_keeps_other_files_unless_forced(runs, tmp_path, capsys):
    out = tmp_path / "merged"
    shutil.copytree(runs.merged, out)
    args = ["eval", "merge", str(runs.one), str(runs.two), "--out", str(out)]
    assert main(args) == 1
    assert "is not empty; pass --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert main(["eval", "merge", str(runs.one), str(runs.two), "--out", str(runs.one)]) == 1
    assert "is one of the shards" in capsys.readouterr().err


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_interleave_back_into_the_whole_list(count):
    items = list(range(11))
    parts = [shards.Shard(i, count).select(items) for i in range(1, count + 1)]
    assert sorted(itertools.chain(*parts)) == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shards._interleave(parts) == items


def test_a_shards_command_becomes_the_single_runs():
    command = "diffc eval rd --data 'my set' --out r/s-1 --bpp 2,3 --shard 1/4"
    assert shards.command_for(command, "r/all") == "diffc eval rd --data 'my set' --out r/all --bpp 2,3"
