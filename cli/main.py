"""The ``diffc`` command: a typer app whose commands live one group per module.

``main(argv)`` runs it and turns every failure into one line on stderr and an exit code (2 for
usage errors, 1 for every other error, 130 for Ctrl-C); ``DIFFC_DEBUG=1`` re-raises errors to show
the traceback. A group called without a command (``diffc``, ``diffc train``) prints its help and
exits 2.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Annotated

import typer

from diffc.cli import coding, errors, evaluate, info, models, sample, train

app = typer.Typer(
    name="diffc",
    help="Image compression with diffusion models.\n\n"
    "Examples:\n\n"
    "  diffc encode photo.png --bpp 0.5 -o photo.dfc\n\n"
    "  diffc decode photo.dfc -o photo.png\n\n"
    "  diffc info image.dfc            show a stream's header and chunk table\n\n"
    "  diffc info image.dfc --json     the same as JSON\n\n"
    "  diffc models                    the shipped models\n\n"
    "  diffc sample -o sample.png      a photo to try them on",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("encode")(coding.encode)
app.command("decode")(coding.decode)
app.command("info")(info.info)
app.command("models")(models.models)
app.command("sample")(sample.sample)
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

    Typer runs outside its standalone mode, so that every error, the parser's usage errors
    included, comes here and is reported on one line (typer's own reports are boxes of several).
    """
    try:
        result = app(args=argv, prog_name="diffc", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except errors.ClickException as exc:
        if isinstance(exc, errors.NoArgsIsHelpError):
            return exc.exit_code  # the group's help is printed already
        if errors.debug_enabled():
            raise
        return errors.report_click(exc)
    except typer.Abort:
        print("diffc: error: aborted", file=sys.stderr)
        return 1
    except Exception as exc:
        if errors.debug_enabled():
            raise
        return errors.report(exc)
    return result if isinstance(result, int) else 0  # typer.Exit's code (--help, --version: 0)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
