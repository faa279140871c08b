"""``edgeship deploy --device GROUP``: the fleet path of the deploy command (table or JSON)."""

from __future__ import annotations

import json
from typing import Any

import typer

from edgeship.errors import BudgetExceeded

from ._common import err, out, progress

__all__ = ["deploy_group"]


def deploy_group(device: str, model: str, data: str | None, inventory: Any, *, json_out: bool,
                 force: bool, parallel: int,
                 input_shapes: dict[str, tuple[int, ...]] | None) -> None:
    """Deploy to every board of *device*; print one row (or JSON entry) per board.

    Exits non-zero unless every board succeeded: 1 when a board failed or an artifact errored,
    7 when a hard budget was exceeded on a board.
    """
    from edgeship.fleet import deploy_fleet
    from edgeship.report import render_fleet_table

    with progress() as report_progress:
        outcome = deploy_fleet(device, model, data, inventory=inventory, parallel=parallel,
                               progress=report_progress, force=force, input_shapes=input_shapes)
    report = outcome.report
    if json_out:
        print(json.dumps(report, indent=2))
    else:
        out.print(render_fleet_table(report))
        out.print(f"fleet verdict [bold]{report['verdict']}[/]; report: {outcome.report_path}")
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


def _hard(report_path: str) -> bool:
    with open(report_path) as fh:
        return bool(json.load(fh)["budgets"].get("hard"))
