"""The ``edgeship`` command line: thin over the library, one function per subcommand.

Every :class:`~edgeship.errors.EdgeshipError` becomes one line on stderr and its exit code;
``--json`` prints the machine-readable document on stdout and keeps progress on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from rich.console import Console

from edgeship import __version__
from edgeship.errors import BudgetExceeded, EdgeshipError

__all__ = ["app", "main"]

app = typer.Typer(
    help="Convert a model for an edge board, ship it over SSH, profile it there, report.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
board_app = typer.Typer(help="Start, stop or inspect a simulated board.", no_args_is_help=True)
app.add_typer(board_app, name="board")

# Piped output (CI logs, `| tee`) gets a wide table instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="Board or group name from the inventory.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model: file.pt2, TorchScript .pt, .onnx, or package.module:factory.")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="Evaluation/calibration data (.npz, see docs/architecture.md).")]
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
def _progress() -> Iterator[_Reporter]:
    """A :class:`_Reporter` live for the duration of the block."""
    if not err.is_terminal:
        yield _Reporter(None)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=err, transient=True) as live:
        yield _Reporter(live)


def _default_data(model: str, data: str | None) -> str | None:
    """The demo model comes with its data file; any other model gets only what it is given."""
    return DEMO_DATA if data is None and model == DEMO_MODEL else data


def _inventory(path: Path | None):
    from devices import load_inventory

    return load_inventory(path)


@app.command()
def deploy(device: DeviceOpt = "sim", model: ModelOpt = DEMO_MODEL,
           data: DataOpt = None, json_out: JsonOpt = False, inventory: InventoryOpt = None,
           force: ForceOpt = False) -> None:
    """Convert MODEL for DEVICE's profile, ship it, profile it on the board, report.

    The report is saved under reports/<device>/<timestamp>/report.json. Exit status: 0 when
    every artifact ran; 7 when the profile's budgets are hard limits and one was exceeded.
    """
    from edgeship.deploy import deploy as run_deploy
    from edgeship.report import render_table

    data = _default_data(model, data)
    with _progress() as progress:
        outcome = run_deploy(device, model, data, inventory=_inventory(inventory),
                             progress=progress, force=force)
    report = outcome.report
    if json_out:
        print(json.dumps(report, indent=2))
    else:
        out.print(render_table(report))
        ship = report["ship"]
        sent = "nothing sent (release already on the board)" if ship["reused"] else \
            f"sent {ship['files_sent']} files, {ship['bytes_sent'] / 1e6:.2f} MB"
        cached = "reused cached bundle" if report["bundle"]["reused"] else "built bundle"
        out.print(f"{cached} {report['bundle']['id']}; {sent}; verdict [bold]{report['verdict']}[/]")
        out.print(f"report: {outcome.report_path}")
    if report["verdict"] == "fail" and report["budgets"].get("hard"):
        raise BudgetExceeded(f"budgets exceeded on {device!r} (profile marks them hard); "
                             f"see {outcome.report_path}")
    if report["verdict"] == "error":
        raise typer.Exit(1)


@app.command()
def convert(device: DeviceOpt = "sim", model: ModelOpt = DEMO_MODEL,
            data: DataOpt = None, json_out: JsonOpt = False, inventory: InventoryOpt = None,
            profile: Annotated[Optional[str], typer.Option(help="Profile name or YAML file, instead of DEVICE's.")] = None,
            force: ForceOpt = False) -> None:
    """Build (or reuse) the verified artifact bundle for DEVICE's profile, without shipping."""
    from edgeship.deploy import convert as run_convert

    data = _default_data(model, data)
    inv = None if profile else _inventory(inventory)
    with _progress() as progress:
        _, bundle = run_convert(device, model, data, inventory=inv, profile=profile,
                                progress=progress, force=force)
    if json_out:
        print(json.dumps({"bundle_id": bundle.id, "path": str(bundle.path),
                          "reused": bundle.reused, "manifest": bundle.manifest}, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"bundle {bundle.id} ({'cached' if bundle.reused else 'built'}) · {bundle.path}",
                  title_justify="left")
    for col in ("artifact", "size", "accuracy", "drop", "top-1 agree", "host p50 ms", "passed"):
        table.add_column(col)
    for a in bundle.manifest["artifacts"]:
        v = a.get("verification", {})
        table.add_row(a["key"], f"{a['size_bytes'] / 1024:.1f} KiB", _num(v.get("accuracy")),
                      _num(v.get("accuracy_drop")), _num(v.get("top1_agreement")),
                      _num((a.get("host_latency_ms") or {}).get("p50")), str(v.get("passed")))
    out.print(table)


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


@app.command()
def boards(inventory: InventoryOpt = None, json_out: JsonOpt = False) -> None:
    """List the boards of the inventory, their groups and profiles."""
    from rich.table import Table

    inv = _inventory(inventory)
    rows = [{"name": b.name, "host": b.host, "port": b.port, "user": b.user, "profile": b.profile,
             "groups": list(b.groups), "simulated": b.simulated} for b in inv.boards.values()]
    if json_out:
        print(json.dumps({"inventory": str(inv.path), "boards": rows,
                          "groups": {g: list(m) for g, m in inv.groups.items()}}, indent=2))
        return
    table = Table(title=f"inventory {inv.path}", title_justify="left")
    for col in ("board", "host", "user", "profile", "groups"):
        table.add_column(col)
    for r in rows:
        host = "loopback (simulated)" if r["simulated"] else f"{r['host']}:{r['port']}"
        table.add_row(r["name"], host, r["user"] or "—", r["profile"], ", ".join(r["groups"]))
    out.print(table)


@app.command("profiles")
def list_profiles(json_out: JsonOpt = False) -> None:
    """List the device profiles: arch, artifacts, threads, budgets."""
    from profiles import available_profiles, load_profile

    found = [load_profile(n) for n in available_profiles()]
    if json_out:
        print(json.dumps([p.model_dump(mode="json") for p in found], indent=2))
        return
    for p in found:
        arts = ", ".join(a.key for a in p.artifacts)
        out.print(f"[bold]{p.name}[/] ({p.arch}, {p.runtime.threads} threads): {arts} — {p.description}")


def _sim(name: str):
    from edgeship.paths import default_paths
    from runtimes import SimBoard

    board = _inventory(None).board(name)
    if not board.simulated:
        raise EdgeshipError(f"{name!r} is a real board; only simulated boards are started by edgeship")
    return SimBoard(default_paths(), name)


@board_app.command("up")
def board_up(name: Annotated[str, typer.Argument(help="Simulated board name.")] = "sim") -> None:
    """Start the simulated board NAME (a real sshd on loopback); idempotent."""
    b = _sim(name).up()
    out.print(f"board {name!r} up at {b.user}@{b.host}:{b.port}, root {b.root}")


@board_app.command("down")
def board_down(name: Annotated[str, typer.Argument(help="Simulated board name.")] = "sim") -> None:
    """Stop the simulated board NAME."""
    _sim(name).down()
    out.print(f"board {name!r} down")


def _version(value: bool) -> None:
    if value:
        print(f"edgeship {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    """edgeship: one command from a trained model to figures measured on the board."""


def main() -> None:
    """Console entry point: run the app, map errors to one line and an exit code."""
    try:
        app()  # standalone: usage errors print click's message and exit 2
    except EdgeshipError as exc:
        err.print(f"[red]edgeship: error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # an unexpected failure still ends in one line, not a traceback
        if os.environ.get("EDGESHIP_DEBUG"):
            raise
        err.print(f"[red]edgeship: internal error:[/] {type(exc).__name__}: {exc} "
                  "(set EDGESHIP_DEBUG=1 for the traceback and report it)",
                  highlight=False, soft_wrap=True)
        sys.exit(70)
