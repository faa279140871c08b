"""The ``edgeship`` command line: thin over the library, one module per group of subcommands.

Every :class:`~core.errors.EdgeshipError` becomes one line on stderr and its exit code;
``--json`` prints the machine-readable document on stdout and keeps progress on stderr.
A new subcommand goes in its own module here, registered on ``app`` from ``_common``, and is
imported below.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from core import __version__
from core.errors import EdgeshipError

from . import boards, check, deploy, report, ship, sweep  # noqa: F401 - registers the subcommands
from ._common import app, err, rewrap_help

__all__ = ["app", "main"]


def _version(value: bool) -> None:
    if value:
        print(f"edgeship {__version__}")
        raise typer.Exit()


_VERBOSE = ("-v", "-vv", "--verbose")


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False,
          verbose: Annotated[int, typer.Option(
              "--verbose", "-v", count=True,
              help="Also show progress details and third-party output (TensorFlow, "
                   "onnxruntime, paramiko); -vv or EDGESHIP_DEBUG=1: everything.")] = 0) -> None:
    """edgeship: one command from a trained model to figures measured on the board."""
    from core.logs import setup

    setup(verbose)


def _one_line(text: str) -> str:
    """The message on one line, its brackets kept literal (``[host]:port`` is not markup)."""
    from rich.markup import escape

    return escape(" ".join(text.split()))


rewrap_help(app)  # after every subcommand above is registered


def main() -> None:
    """Console entry point: run the app, map errors to one line and an exit code.

    ``-v`` is accepted anywhere on the line (``edgeship deploy -v``), not only before the
    subcommand.
    """
    args = sys.argv[1:]
    args = [a for a in args if a in _VERBOSE] + [a for a in args if a not in _VERBOSE]
    try:
        app(args=args)  # standalone: usage errors print click's message and exit 2
    except EdgeshipError as exc:
        err.print(f"[red]edgeship: error:[/] {_one_line(str(exc))}", highlight=False,
                  soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # an unexpected failure still ends in one line, not a traceback
        if os.environ.get("EDGESHIP_DEBUG"):
            raise
        err.print(f"[red]edgeship: internal error:[/] {type(exc).__name__}: "
                  f"{_one_line(str(exc))} (set EDGESHIP_DEBUG=1 for the traceback and report it)",
                  highlight=False, soft_wrap=True)
        sys.exit(70)
