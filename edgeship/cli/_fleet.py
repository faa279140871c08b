"""``edgeship deploy --device GROUP``: the fleet path of the deploy command (table or JSON)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from core.errors import BudgetExceeded, ConfigError

from ._common import err, out, progress

__all__ = ["Engine", "EngineOpt", "ForksOpt", "MaxFailOpt", "SerialOpt", "deploy_group",
           "engine_options"]


class Engine(str, Enum):
    """Who runs the ship and profile stages of a fleet."""

    builtin = "builtin"
    ansible = "ansible"


EngineOpt = Annotated[Engine, typer.Option(
    "--engine", help="builtin: edgeship's own parallel SSH; ansible: ansible-playbook (big fleets).")]
ForksOpt = Annotated[Optional[int], typer.Option(
    "--forks", min=1, help="--engine ansible: boards worked on at once (default: --parallel).")]
SerialOpt = Annotated[Optional[int], typer.Option(
    "--serial", min=0, help="--engine ansible: boards per batch (rolling deploy; 0: all at once).")]
MaxFailOpt = Annotated[Optional[int], typer.Option(
    "--max-fail-percentage", min=0, max=100,
    help="--engine ansible: stop when more than P% of a batch failed (default 100: never).")]


def engine_options(engine: Engine, forks: int | None, serial: int | None,
                   max_fail: int | None, parallel: int) -> Any:
    """``AnsibleOptions`` for ``--engine ansible``; ``None`` for the built-in engine."""
    if engine is Engine.builtin:
        if (forks, serial, max_fail) != (None, None, None):
            raise ConfigError("--forks, --serial and --max-fail-percentage apply to --engine "
                              "ansible; with the built-in engine use --parallel")
        return None
    from edgeship.ansible_engine import AnsibleOptions

    return AnsibleOptions(forks=forks or parallel, serial=serial or 0,
                          max_fail_percentage=100 if max_fail is None else max_fail)


def deploy_group(device: str, model: str, data: str | None, inventory: Any, *, json_out: bool,
                 force: bool, parallel: int,
                 input_shapes: dict[str, tuple[int, ...]] | None, ansible: Any = None,
                 ship: Any = None) -> None:
    """Deploy to every board of *device*; print one row (or JSON entry) per board.

    *ansible* (``AnsibleOptions``): run the ship and profile stages through ansible-playbook.

    Exits non-zero unless every board succeeded: 1 when a board failed or an artifact errored,
    7 when a hard budget was exceeded on a board, 8 when artifacts were left out of the bundle
    (partial) and everything else passed.
    """
    from edgeship.fleet import deploy_fleet
    from profiler.report import render_fleet_table

    with progress() as report_progress:
        if ansible is not None:
            from edgeship.ansible_engine import deploy_fleet_ansible

            outcome = deploy_fleet_ansible(device, model, data, inventory=inventory,
                                           options=ansible, progress=report_progress,
                                           force=force, input_shapes=input_shapes)
        else:
            outcome = deploy_fleet(device, model, data, inventory=inventory, parallel=parallel,
                                   progress=report_progress, force=force,
                                   input_shapes=input_shapes, ship=ship)
    report = outcome.report
    if json_out:
        print(json.dumps(report, indent=2))
    else:
        out.print(render_fleet_table(report))
        out.print(f"fleet verdict [bold]{report['verdict']}[/]; report: {outcome.report_path}")
        spread = {k: v["spread_pct"] for k, v in report.get("spread", {}).items()
                  if v.get("spread_pct") is not None}
        if spread:
            out.print("unit-to-unit p50 spread: " + ", ".join(f"{k} {v:.1f}%"
                                                              for k, v in spread.items()))
        out.print(f"fleet page: {outcome.report_path.with_name('fleet.html')}")
    failed = [e for e in report["fleet"] if not e["ok"]]
    if failed:
        names = ", ".join(e["board"] for e in failed)
        err.print(f"[red]edgeship: error:[/] {len(failed)} of {report['boards']} boards of "
                  f"{device!r} failed ({names}); see the reasons above and rerun the deploy to "
                  "retry them", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    hard = [e["board"] for e in report["fleet"] if e["verdict"] == "fail"
            and _hard(e["report"])]
    if hard:
        raise BudgetExceeded(f"budgets exceeded on {', '.join(hard)} (profile marks them hard); "
                             f"see {outcome.report_path}")
    if report["verdict"] != "pass" and any(e["verdict"] == "error" for e in report["fleet"]):
        raise typer.Exit(1)
    if any(e.get("left_out") for e in report["fleet"]):
        from profiler.report import PARTIAL_EXIT

        raise typer.Exit(PARTIAL_EXIT)


def _hard(report_path: str) -> bool:
    with open(report_path) as fh:
        return bool(json.load(fh)["budgets"].get("hard"))
