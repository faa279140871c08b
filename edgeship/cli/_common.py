"""Shared pieces of the CLI: the app, consoles, common options, progress reporting."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from rich.console import Console

__all__ = ["DEMO_DATA", "DEMO_MODEL", "DataOpt", "DeviceOpt", "ForceOpt", "InventoryOpt",
           "JsonOpt", "ModelOpt", "app", "board_app", "boards_app", "default_data", "err", "open_inventory",
           "out", "progress"]

app = typer.Typer(
    help="Convert a model for an edge board, ship it over SSH, profile it there, report.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
board_app = typer.Typer(help="Start, stop or inspect a simulated board.", no_args_is_help=True)
app.add_typer(board_app, name="board")
# `edgeship boards` lists the inventory (its callback); `edgeship boards trust NAME` pins a key.
boards_app = typer.Typer(help="List the inventory; `boards trust NAME` pins a board's host key.")
app.add_typer(boards_app, name="boards", invoke_without_command=True)

# Piped output (CI logs, `| tee`) gets a wide table instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="Board or group name from the inventory.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model: file.pt2, TorchScript .pt, .onnx, .tflite, or package.module:factory.")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="Evaluation/calibration/training data: .npz, a folder of .npy files, or module:function (see docs/architecture.md).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON document on stdout (progress stays on stderr).")]
InventoryOpt = Annotated[Optional[Path], typer.Option("--inventory", "-i", help="Inventory file (default devices/inventory.yaml).")]
DEMO_MODEL, DEMO_DATA = "build/demo/digits_cnn.pt2", "build/demo/digits.npz"
ForceOpt = Annotated[bool, typer.Option("--force", help="Rebuild the bundle even when a cached one matches.")]


class _Reporter:
    """Progress for long work: ``reporter(step)`` for stages, ``reporter.transfer`` for bytes.

    On a terminal: a live spinner line and a transfer bar (rich). Otherwise: plain lines on
    stderr, one per stage and one per finished file, so logs stay readable.
    """

    def __init__(self, live: Any | None) -> None:
        self._live = live
        self._task: Any = None

    def __call__(self, text: str) -> None:
        if self._live is None:
            print(f"edgeship: {text}", file=sys.stderr, flush=True)
            return
        from rich.markup import escape

        text = escape(text)  # a tool's message may hold [brackets]: not markup
        self._live.console.log(f"[dim]{text}[/]")
        if self._task is None:
            self._task = self._live.add_task(text, total=None)
        self._live.update(self._task, description=text, total=None, completed=0)

    def transfer(self, name: str, done: int, total: int) -> None:
        """Bytes of one file sent so far."""
        if self._live is None:
            if done >= total:
                print(f"edgeship:   sent {name} ({total / 1e6:.2f} MB)", file=sys.stderr, flush=True)
            return
        if self._task is None:
            self._task = self._live.add_task(name, total=total)
        self._live.update(self._task, description=f"uploading {name}", total=total, completed=done)


@contextmanager
def progress() -> Iterator[_Reporter]:
    """A :class:`_Reporter` live for the duration of the block."""
    if not err.is_terminal:
        yield _Reporter(None)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=err, transient=True) as live:
        yield _Reporter(live)


def default_data(model: str, data: str | None) -> str | None:
    """The demo model comes with its data file; any other model gets only what it is given."""
    return DEMO_DATA if data is None and model == DEMO_MODEL else data


def open_inventory(path: Path | None):
    from devices import load_inventory

    return load_inventory(path)
