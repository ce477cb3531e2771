"""Spreading ``diffc eval rd`` over machines: shard I of N measures every N-th image, and ``merge``
joins the shards' results into the results one run over all the images writes.

Shards are numbered from 1 (``--shard 1/4`` ... ``--shard 4/4``), as people count and as a SLURM
array ``--array=1-4`` numbers its tasks. Shard I takes ``images[I-1::N]`` of the run's image list
(name order, after ``--limit``): round-robin, so shards differ by one image at most, whatever the
order of sizes, and the whole list is the shards interleaved again.

A shard's results are those of a run (schema ``diffc-eval-rd/1``) whose ``settings["images"]``
are its own images and whose ``settings["shard"]`` says which it is: ``index``, ``count``,
``images`` (the number in the whole list) and ``names_sha256`` (of the whole list's names, one per
line), so that ``merge`` can tell shards of one run from shards of another without reading the
images again.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from diffc.evaluation import runner
from diffc.evaluation.errors import EvaluationError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 1) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``I/N`` as ``--shard`` takes it; a ValueError says what is wrong."""
        index, slash, count = text.partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            raise ValueError(f"{text!r} is not I/N, shard I of N, such as 2/4") from None
        if not slash or shard.count < 1 or not 1 <= shard.index <= shard.count:
            raise ValueError(f"{text!r}: shards are numbered 1 to N, such as 1/4 ... 4/4")
        return shard

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, items: Sequence[T]) -> list[T]:
        """This shard's items: every ``count``-th from the ``index``-th."""
        return list(items[self.index - 1 :: self.count])

    def describe(self, names: Sequence[str]) -> dict[str, Any]:
        """What a shard's settings record of it, ``names`` being the whole run's images."""
        return {"index": self.index, "count": self.count, "images": len(names), "names_sha256": names_sha256(names)}


def names_sha256(names: Sequence[str]) -> str:
    """The SHA-256 of image names, one per line: which images a sharded run covers, in which order."""
    return hashlib.sha256("".join(f"{name}\n" for name in names).encode()).hexdigest()


def command_for(command: str, out: str) -> str:
    """A shard's command line as one run over all its images into ``out`` would read: without
    ``--shard``, with ``--out out``."""
    words = shlex.split(command)
    kept: list[str] = []
    for word, previous in zip(words, [None, *words]):
        if word == "--shard" or previous == "--shard":
            continue
        kept.append(out if previous == "--out" else word)
    return shlex.join(kept)


def merge(shards: Sequence[tuple[str, dict[str, Any]]], out: str) -> dict[str, Any]:
    """The results of one run into ``out`` over every image of ``shards`` (where each came from,
    its results), as that run writes them but for the times measured. Shards of other runs, a shard
    given twice or missing, and unfinished shards are refused."""
    _check_shards(shards)
    first = shards[0][1]
    by_index = sorted(shards, key=lambda shard: shard[1]["settings"]["shard"]["index"])
    images = _interleave([results["settings"]["images"] for _, results in by_index])
    _check_images(by_index, images)
    settings = {key: value for key, value in first["settings"].items() if key != "shard"}
    settings["images"] = images
    cpus = dict.fromkeys(results["versions"]["cpu"] for _, results in by_index)
    points = [point for _, results in by_index for point in results["points"]]
    runner.sort_points(points, [image["name"] for image in images], list(settings["codecs"]))
    return {**first, "command": command_for(first["command"], out), "settings": settings,
            "versions": {**first["versions"], "cpu": "; ".join(cpus)}, "points": points}


def _check_shards(shards: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Refuse results that are not shards of one run with the same settings, or not all of them."""
    if not shards:
        raise EvaluationError("no shards to merge")
    for where, results in shards:
        if results.get("schema") != runner.SCHEMA or "shard" not in results.get("settings", {}):
            raise EvaluationError(f"{where} holds no shard of diffc eval rd --shard I/N; nothing to merge there")
    where0, first = shards[0]
    for where, results in shards[1:]:
        differs = _differences(first, results)
        if differs:
            raise EvaluationError(
                f"{where} and {where0} are shards of different runs (they differ in {', '.join(differs)})")
    count = first["settings"]["shard"]["count"]
    seen: dict[int, str] = {}
    for where, results in shards:
        index = results["settings"]["shard"]["index"]
        if index in seen:
            raise EvaluationError(f"{seen[index]} and {where} are both shard {index}/{count}; give each shard once")
        seen[index] = where
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise EvaluationError(f"shard {', '.join(missing)} missing: merge needs all {count} shards")


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What two shards may not differ in: every setting but their images and index, every version
    but the CPU, the notes, and the command but its --shard and --out."""
    def comparable(results: dict[str, Any]) -> dict[str, Any]:
        settings = {k: v for k, v in results["settings"].items() if k != "images"}
        shard = {k: v for k, v in settings.pop("shard").items() if k != "index"}
        versions = {k: v for k, v in results["versions"].items() if k != "cpu"}
        return {**settings, "shard": shard, **versions, "notes": results["notes"],
                "command": command_for(results["command"], "OUT")}

    left, right = comparable(a), comparable(b)
    return sorted(key for key in left.keys() | right.keys() if left.get(key) != right.get(key))


def _interleave(shards: Sequence[Sequence[T]]) -> list[T]:
    """The whole list back from its shards in index order: the inverse of ``Shard.select``."""
    longest = max(len(shard) for shard in shards)
    return [shard[i] for i in range(longest) for shard in shards if i < len(shard)]


def _check_images(shards: Sequence[tuple[str, dict[str, Any]]], images: list[dict[str, Any]]) -> None:
    """Refuse shards whose images are not the whole run's, each once (the names' digest, in the run's
    order, catches an image two shards hold as well as one none holds), or whose points are not all there."""
    spec = shards[0][1]["settings"]["shard"]
    names = [image["name"] for image in images]
    if len(names) != spec["images"] or names_sha256(names) != spec["names_sha256"]:
        raise EvaluationError(
            f"the shards hold {len(names)} images, not the {spec['images']} their run was split from, in its order; "
            "was a shard's data folder changed?")
    codecs = list(shards[0][1]["settings"]["codecs"])
    for where, results in shards:
        done = {(point["image"], point["codec"]) for point in results["points"]}
        lacking = [(image["name"], codec) for image in results["settings"]["images"] for codec in codecs
                   if (image["name"], codec) not in done]
        if lacking:
            name, codec = lacking[0]
            raise EvaluationError(
                f"{where} is unfinished ({len(lacking)} image and codec pairs not measured, {name} under {codec} "
                "first): run its diffc eval rd again to finish it")
