"""Regenerate README's results section from the ``summary.md`` files of ``diffc eval`` runs.

    python benchmarks/readme_results.py docs/results/kodak-256 docs/results/kodak-256-diffc ...

Copies each summary's title, command and its PSNR and lossless tables between the
``<!-- results:begin -->`` and ``<!-- results:end -->`` markers of README.md, so that README shows
exactly what the recorded runs measured.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
KEPT = ("## PSNR (dB) at the target rates", "## Lossless")


def sections(summary: str) -> dict[str, list[str]]:
    """The summary's ``## `` sections by heading, each with its lines."""
    found: dict[str, list[str]] = {}
    current = None
    for line in summary.splitlines():
        if line.startswith("## "):
            current = line
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


def block(folder: Path) -> list[str]:
    text = (folder / "summary.md").read_text()
    title = text.splitlines()[0].removeprefix("# Rate-distortion evaluation: ")
    command = re.search(r"^    (diffc .*)$", text, re.MULTILINE)
    lines = [f"### `{folder.name}`: {title} ([summary]({folder / 'summary.md'}), [plot]({folder / 'rd.png'}))", ""]
    if command:
        lines += [f"`{command.group(1)}`", ""]
    for heading, body in sections(text).items():
        if heading in KEPT:
            lines += [f"##{heading}", *[line for line in body if line.startswith("|") or not line.strip()]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args()
    readme = args.readme.read_text()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{args.readme} lacks the {BEGIN} ... {END} markers")
    body = [line for folder in args.folders for line in block(folder)]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(body)).strip()
    head, rest = readme.split(BEGIN, 1)
    args.readme.write_text(f"{head}{BEGIN}\n{body}\n{rest[rest.index(END):]}")


if __name__ == "__main__":
    main()
