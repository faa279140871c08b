"""``edgeship deploy`` and ``edgeship convert``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from core.errors import BudgetExceeded

from ._common import (
    DEMO_MODEL,
    DataOpt,
    DeviceOpt,
    ForceOpt,
    InventoryOpt,
    JsonOpt,
    ModelOpt,
    app,
    build_demo_model,
    default_data,
    demo_missing,
    open_inventory,
    out,
    profile_not_device,
    progress,
)
from ._fleet import Engine, EngineOpt, ForksOpt, MaxFailOpt, SerialOpt, engine_options

__all__ = ["InputShapeOpt", "ParallelOpt", "convert", "deploy", "input_shapes"]

KeepOpt = Annotated[int, typer.Option("--keep", min=1, help="Releases kept on the board (current and previous always).")]
CompressOpt = Annotated[bool, typer.Option("--compress", help="Compress on the wire (slow links).")]
RetriesOpt = Annotated[int, typer.Option("--retries", min=0, help="Reconnect-and-resume attempts after a dropped connection.")]
LockWaitOpt = Annotated[float, typer.Option("--lock-wait", min=0, help="Seconds to wait for another deploy's lock on the board.")]
ParallelOpt = Annotated[int, typer.Option(
    "--parallel", "-j", min=1, help="For a group: boards deployed to at the same time.")]

InputShapeOpt = Annotated[Optional[list[str]], typer.Option(
    "--input-shape", help="Fix an input's shape, NAME=1x3x224x224 (repeatable), for dynamic axes.")]


def input_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]] | None:
    """Parsed ``--input-shape`` options (a bad spec is a one-line ConfigError)."""
    if not specs:  # converters (numpy, …) load only when needed: a down board fails in ~1 s
        return None
    from converters.load import parse_input_shapes

    return parse_input_shapes(specs) or None


@app.command()
def deploy(device: DeviceOpt = "sim", model: ModelOpt = DEMO_MODEL,
           data: DataOpt = None, json_out: JsonOpt = False, inventory: InventoryOpt = None,
           force: ForceOpt = False, input_shape: InputShapeOpt = None,
           parallel: ParallelOpt = 4, engine: EngineOpt = Engine.builtin, forks: ForksOpt = None,
           serial: SerialOpt = None, max_fail_percentage: MaxFailOpt = None,
           keep: KeepOpt = 3, compress: CompressOpt = False, retries: RetriesOpt = 3,
           lock_wait: LockWaitOpt = 0.0) -> None:
    """Convert MODEL for DEVICE's profile, ship it, profile it on the board, report.

    The board is checked first (reachable, host key, login, Python, CPU, glibc), so a board
    that cannot be deployed to is reported before anything is converted. Without --model, the
    demo model (trained once into build/demo when missing).

    DEVICE may be a group of the inventory: every board is deployed to, PARALLEL at a time, with
    one result per board. The report is saved under reports/<device>/<timestamp>/report.json.
    With --engine ansible the ship and profile stages run through ansible-playbook (FORKS,
    SERIAL, MAX_FAIL_PERCENTAGE) and give the same fleet report.

    Exit status: 0 when every artifact of the profile was built and ran (on every board); 8
    (partial) when some were left out of the bundle (the report's left_out says why) and the
    rest passed; 7 when the profile's budgets are hard limits and one was exceeded; 1 when an
    artifact errored on the board.
    """
    from edgeship.deploy import ShipOptions
    from edgeship.deploy import deploy as run_deploy
    from profiler.report import PARTIAL_EXIT, render_table

    ship = ShipOptions(keep=keep, compress=compress, retries=retries, lock_wait_s=lock_wait)
    data = default_data(model, data)
    inv = open_inventory(inventory)
    ansible = engine_options(engine, forks, serial, max_fail_percentage, parallel)
    if device in inv.groups or ansible is not None:
        from ._fleet import deploy_group

        if demo_missing(model):
            with progress() as report_progress:
                build_demo_model(report_progress)
        return deploy_group(device, model, data, inv, json_out=json_out, force=force,
                            parallel=parallel, input_shapes=input_shapes(input_shape),
                            ansible=ansible, ship=ship)
    with progress() as report_progress, profile_not_device(inv, "deploy"):
        if demo_missing(model):  # the board first: a down board is said before training
            _check_board(inv.board(device), report_progress)
            build_demo_model(report_progress)
        outcome = run_deploy(device, model, data, inventory=inv,
                             progress=report_progress, force=force,
                             input_shapes=input_shapes(input_shape), ship=ship)
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
        from profiler.history import regression_line

        out.print(regression_line(report))
        if outcome.html_path is not None:
            out.print(f"html report (plots): {outcome.html_path}")
    if report["verdict"] == "fail" and report["budgets"].get("hard"):
        raise BudgetExceeded(f"budgets exceeded on {device!r} (profile marks them hard); "
                             f"see {outcome.report_path}")
    if report["verdict"] == "error":
        raise typer.Exit(1)
    if report.get("left_out"):  # partial (or a soft budget failure with artifacts left out)
        raise typer.Exit(PARTIAL_EXIT)


@app.command()
def convert(device: DeviceOpt = "sim", model: ModelOpt = DEMO_MODEL,
            data: DataOpt = None, json_out: JsonOpt = False, inventory: InventoryOpt = None,
            profile: Annotated[Optional[str], typer.Option(help="Profile name or YAML file, instead of DEVICE's.")] = None,
            force: ForceOpt = False, input_shape: InputShapeOpt = None) -> None:
    """Build (or reuse) the verified artifact bundle for DEVICE's profile, without shipping.

    Exit status: 0 when every artifact of the profile is in the bundle; 8 (partial) when some
    were left out (listed with their reasons; `left_out` in --json).
    """
    from edgeship.deploy import convert as run_convert
    from profiler.report import PARTIAL_EXIT

    data = default_data(model, data)
    inv = None if profile else open_inventory(inventory)
    with progress() as report_progress, profile_not_device(inv, "convert"):
        if demo_missing(model):
            if inv is not None:  # a wrong --device is said before a minute of training
                inv.resolve(device)
            build_demo_model(report_progress)
        _, bundle = run_convert(device, model, data, inventory=inv, profile=profile,
                                progress=report_progress, force=force,
                                input_shapes=input_shapes(input_shape))
    left_out = bundle.manifest.get("left_out") or []
    if json_out:
        print(json.dumps({"bundle_id": bundle.id, "path": str(bundle.path),
                          "reused": bundle.reused, "left_out": left_out,
                          "manifest": bundle.manifest}, indent=2))
    else:
        out.print(_bundle_table(bundle))
    if left_out:
        raise typer.Exit(PARTIAL_EXIT)


def _bundle_table(bundle: Any) -> Any:
    """The console table of a bundle: one row per artifact, then one per left-out artifact."""
    from rich.markup import escape
    from rich.table import Table

    from profiler.report import left_out_line

    table = Table(title=f"bundle {bundle.id} ({'cached' if bundle.reused else 'built'}) · {bundle.path}",
                  title_justify="left")
    for col in ("artifact", "size", "accuracy", "drop", "top-1 agree", "host p50 ms", "passed"):
        table.add_column(col)
    for a in bundle.manifest["artifacts"]:
        v = a.get("verification", {})
        table.add_row(a["key"], f"{a['size_bytes'] / 1024:.1f} KiB", _num(v.get("accuracy")),
                      _num(v.get("accuracy_drop")), _num(v.get("top1_agreement")),
                      _num((a.get("host_latency_ms") or {}).get("p50")),
                      str(v.get("passed")) + (f" (in place of {a['requested']})"
                                              if a.get("requested") else ""))
    for lo in bundle.manifest.get("left_out") or []:
        table.add_row(lo["key"], "—", "—", "—", "—", "—",
                      f"[yellow]left out[/]: {escape(left_out_line(lo))}")
    return table


def _check_board(board: Any, say: Any) -> None:
    """The deploy's own pre-flight (edgeship.deploy.check_reachable), run ahead of a long step."""
    from core.paths import default_paths
    from edgeship.deploy import check_reachable
    from profiles import load_profile

    check_reachable(board, default_paths(), load_profile(board.profile), say)


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"
