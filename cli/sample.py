"""``diffc sample``: the photo shipped with diffc, to try the codecs on without a data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from diffc import samples
from diffc.cli.io import check_writable, write_bytes


def sample(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the PNG (- for stdout).")] = Path("sample.png"),
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No note on stderr.")] = False,
) -> None:
    """Write the sample photo shipped with diffc (256x256 PNG, CC BY-SA 4.0) to try the codecs on.

    Example:

      diffc sample -o sample.png && diffc encode sample.png --bpp 0.5 -o sample.dfc
    """
    check_writable(output, force=force)
    write_bytes(output, samples.read_bytes(), force=force)
    if not quiet:
        width, height = samples.SIZE
        typer.echo(f"diffc: wrote {output}, {width}x{height}: {samples.ATTRIBUTION}", err=True)
