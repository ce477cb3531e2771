"""The ``diffc`` command: a typer app whose commands live one group per module.

``main(argv)`` runs it and turns every failure into one line on stderr and an exit code (1 for
errors, 2 for usage errors; typer reports Ctrl-C itself); ``DIFFC_DEBUG=1`` re-raises to show the traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Annotated

import typer

from diffc.cli import coding, errors, evaluate, info, models, train

app = typer.Typer(
    name="diffc",
    help="Image compression with diffusion models.\n\n"
    "Examples:\n\n"
    "  diffc encode photo.png --bpp 0.5 -o photo.dfc\n\n"
    "  diffc decode photo.dfc -o photo.png\n\n"
    "  diffc info image.dfc            show a stream's header and chunk table\n\n"
    "  diffc info image.dfc --json     the same as JSON\n\n"
    "  diffc models                    the shipped models",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("encode")(coding.encode)
app.command("decode")(coding.decode)
app.command("info")(info.info)
app.command("models")(models.models)
app.add_typer(evaluate.eval_app, name="eval")
app.add_typer(train.train_app, name="train")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"diffc {version('diffc')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Image compression with diffusion models."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: sys.argv[1:]) and return the exit code.

    Typer's standalone mode prints usage errors (exit 2) itself; everything else raised by a
    command is reported here on one line.
    """
    try:
        app(args=argv, prog_name="diffc", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:
        if errors.debug_enabled():
            raise
        return errors.report(exc)
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
