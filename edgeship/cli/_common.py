"""Shared pieces of the CLI: the app, consoles, common options, progress reporting."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from rich.console import Console

__all__ = ["DEMO_DATA", "DEMO_MODEL", "DataOpt", "DeviceOpt", "ForceOpt", "InventoryOpt",
           "JsonOpt", "ModelOpt", "app", "board_app", "boards_app", "build_demo_model",
           "default_data", "demo_missing", "err", "open_inventory", "out", "profile_not_device",
           "progress", "rewrap_help"]

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


def demo_missing(model: str) -> bool:
    """Whether *model* is the default demo model and it has not been built yet."""
    return model == DEMO_MODEL and not (Path(DEMO_MODEL).exists() and Path(DEMO_DATA).exists())


def build_demo_model(say: Any) -> None:
    """Train the demo model into ``build/demo`` (what ``make demo-model`` does), saying so."""
    from edgeship.demo import build_demo

    say(f"the demo model is not built yet: training it into {Path(DEMO_MODEL).parent} "
        "(about a minute, once; `make demo-model` does the same)")
    card = build_demo(Path(DEMO_MODEL).parent)
    say(f"demo model ready: test accuracy {card['test_accuracy']:.3f} on {card['test']} "
        f"held-out digits ({card['train_seconds']} s)")


@contextmanager
def profile_not_device(inventory: Any, command: str) -> Iterator[None]:
    """``--device rpi4`` where rpi4 is a profile, not a board: say so and point to the fix."""
    from core.errors import ConfigError, UnknownNameError

    try:
        yield
    except UnknownNameError as exc:
        from profiles import available_profiles

        if exc.kind != "device" or exc.name not in available_profiles():
            raise
        where = getattr(inventory, "path", None) or "the inventory"
        fix = (f"`edgeship convert --profile {exc.name}` builds for it" if command == "convert"
               else f"add a board with `edgeship_profile: {exc.name}` to {where} and "
                    f"{command} to that board (`edgeship convert --profile {exc.name}` only "
                    "builds)")
        raise ConfigError(f"{exc.name!r} is a profile, not a board of {where}: {fix}") from exc


def rewrap_help(typer_app: typer.Typer) -> None:
    """Help texts from docstrings, their source line breaks removed: each paragraph (separated
    by a blank line) is re-flowed to the terminal's width by rich."""
    import inspect

    def flow(doc: str | None) -> str | None:
        if not doc:
            return doc
        return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))

    for info in typer_app.registered_commands:
        info.help = flow(info.help or inspect.getdoc(info.callback))
    for group in typer_app.registered_groups:
        rewrap_help(group.typer_instance)
    if isinstance(typer_app.info.help, str):
        typer_app.info.help = flow(typer_app.info.help)


def open_inventory(path: Path | None):
    from devices import load_inventory

    return load_inventory(path)
