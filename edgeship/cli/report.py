"""``edgeship report`` (re-render a saved report) and ``edgeship history`` (the trend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from core.errors import ConfigError

from ._common import JsonOpt, app, out

__all__ = ["history", "report"]


def _latest(device: str) -> Path:
    from core.paths import default_paths
    from profiler.history import load_history

    found = load_history(default_paths().reports, device)
    if not found:
        raise ConfigError(f"no saved reports for {device!r}; run `edgeship deploy --device "
                          f"{device}` first")
    return found[-1][0]


@app.command()
def report(path: Annotated[Optional[Path], typer.Argument(help="A saved report.json (or its folder).")] = None,
           device: Annotated[Optional[str], typer.Option("--device", "-d", help="Use the latest report of this board.")] = None,
           html: Annotated[bool, typer.Option("--html", help="Also (re)write report.html next to it.")] = False,
           json_out: JsonOpt = False) -> None:
    """Re-render a saved report (table, JSON or HTML) without touching the board."""
    from profiler.history import regression_line
    from profiler.report import render_table

    if (path is None) == (device is None):
        raise ConfigError("give either a report PATH or --device NAME (exactly one)")
    if device is not None:
        path = _latest(device)
    elif path is None:  # unreachable (checked above); keeps the type checker informed
        raise ConfigError("give a report PATH")
    path = path / "report.json" if path.is_dir() else path
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read report {path}: {exc}; pass a report.json written by "
                          "edgeship deploy") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("artifacts"), list):
        raise ConfigError(f"{path} is not a single-board edgeship report")
    if json_out:
        print(json.dumps(doc, indent=2))
    else:
        out.print(render_table(doc))
        out.print(regression_line(doc))
        out.print(f"report: {path}")
    if html:
        from core.paths import default_paths
        from profiler.history import history_rows
        from profiler.html_report import write_html

        try:  # the plot shows this board's runs of this model and profile
            rows = history_rows(default_paths().reports, doc)
        except ConfigError:  # a report copied from elsewhere: no history here
            rows = []
        target = write_html(doc, path.parent / "report.html", rows)
        out.print(f"html report (plots): {target}")


@app.command()
def history(device: Annotated[str, typer.Option("--device", "-d", help="Board name.")],
            model: Annotated[Optional[str], typer.Option(
                "--model", "-m", help="Only this model: a prefix of its sha256 or of its name.")] = None,
            json_out: JsonOpt = False) -> None:
    """The models deployed to a board, and the trend of each: p50, p99, peak RSS per artifact.

    History is kept per board, profile, model (its source's sha256) and artifact: a new model
    starts its own history instead of being compared with the previous one.
    """
    from rich.table import Table

    from core.paths import default_paths
    from profiler.history import models, trend

    reports = default_paths().reports
    data = trend(reports, device)  # one clear error when the board has no reports
    found = models(reports, device)
    if model is not None:
        sha = next((m["model"] for m in found if m["name"].startswith(model)), model)
        data = trend(reports, device, model=sha)
        found = [m for m in found if (m["model"] or "").startswith(sha)]
    if json_out:
        print(json.dumps({**data, "models": found}, indent=2))
        return
    table = Table(title=f"models on {device}", title_justify="left")
    for col in ("model", "profile", "deploys", "first", "last", "last verdict"):
        table.add_column(col, justify="right" if col == "deploys" else "left")
    for m in found:
        table.add_row(m["name"], str(m["profile"]), str(m["deploys"]), m["first"] or "?",
                      m["last"] or "?", m.get("verdict") or "—")
    out.print(table)
    table = Table(title=f"history of {device} · {data['deploys']} deploys", title_justify="left")
    for col in ("model", "created", "bundle", "artifact", "p50 ms", "p99 ms", "peak RSS MB",
                "verdict"):
        table.add_column(col, justify="right" if "ms" in col or "MB" in col else "left")
    for r in sorted(data["rows"], key=lambda r: (r["model_name"], r["profile"] or "",
                                                 r["created"] or "")):
        table.add_row(r["model_name"], r["created"] or "?", r["bundle"], r["artifact"],
                      _n(r["p50_ms"], ".3f"), _n(r["p99_ms"], ".3f"), _n(r["peak_rss_mb"], ".1f"),
                      r["verdict"] or "—")
    out.print(table)


def _n(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)
