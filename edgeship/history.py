"""Past deploys on a board: the saved reports, the trend, and the regression check.

Reports live at ``reports/<device>/<timestamp>/report.json`` (``save_report``); fleet documents
saved beside them (no ``artifacts``) are skipped. A *regression* is an artifact whose warm p50
is slower than in the previous report of the same board and profile by more than the budget's
``p50_regression_pct`` (default 10 %).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeship.errors import ConfigError

__all__ = ["check_regression", "load_history", "previous_report", "record", "regression_line",
           "trend"]

log = logging.getLogger(__name__)


def load_history(reports_dir: Path, device: str) -> list[tuple[Path, dict[str, Any]]]:
    """Every readable single-board report of *device*, oldest first."""
    found = []
    for path in sorted((reports_dir / device).glob("*/report.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable report %s: %s", path, exc)
            continue
        if isinstance(doc, dict) and isinstance(doc.get("artifacts"), list):
            found.append((path, doc))
    return sorted(found, key=lambda item: (item[1].get("created", ""), str(item[0])))


def previous_report(reports_dir: Path, device: str, profile: str) -> tuple[Path, dict] | None:
    """The latest saved report of *device* made with *profile*, or ``None``."""
    same = [(p, d) for p, d in load_history(reports_dir, device) if d.get("profile") == profile]
    return same[-1] if same else None


def _p50(row: Mapping[str, Any]) -> float | None:
    return (row.get("latency_ms") or {}).get("p50") if row.get("ok") else None


def check_regression(report: Mapping[str, Any], previous: tuple[Path, Mapping] | None,
                     threshold_pct: float | None) -> dict[str, Any]:
    """Per artifact, p50 now vs the previous run; ``regressed`` lists the slower-than-allowed."""
    if previous is None or threshold_pct is None:
        why = "no previous run on this board and profile" if previous is None else "disabled"
        return {"checked": False, "reason": why, "threshold_pct": threshold_pct, "regressed": []}
    path, prev = previous
    before = {r["key"]: _p50(r) for r in prev.get("artifacts", [])}
    rows: dict[str, Any] = {}
    for row in report["artifacts"]:
        now, then = _p50(row), before.get(row["key"])
        if now is None or not then:
            continue
        change = (now - then) / then * 100.0
        rows[row["key"]] = {"p50_ms": now, "previous_p50_ms": then,
                            "change_pct": round(change, 2), "regressed": change > threshold_pct}
    return {"checked": True, "threshold_pct": threshold_pct, "previous": str(path),
            "previous_created": prev.get("created"), "previous_bundle": prev["bundle"]["id"],
            "artifacts": rows, "regressed": sorted(k for k, v in rows.items() if v["regressed"])}


def trend(reports_dir: Path, device: str) -> dict[str, Any]:
    """The history of *device* as rows (one per deploy × artifact) for tables and plots."""
    history = load_history(reports_dir, device)
    if not history:
        raise ConfigError(f"no saved reports for {device!r} under {reports_dir}; run "
                          f"`edgeship deploy --device {device}` first")
    rows = []
    for path, doc in history:
        for art in doc["artifacts"]:
            lat = art.get("latency_ms") or {}
            rows.append({"created": doc.get("created"), "report": str(path),
                         "bundle": doc["bundle"]["id"], "profile": doc.get("profile"),
                         "artifact": art["key"], "p50_ms": lat.get("p50"),
                         "p99_ms": lat.get("p99"), "peak_rss_mb": art.get("peak_rss_mb"),
                         "accuracy": art.get("accuracy"), "verdict": art.get("verdict")})
    return {"device": device, "deploys": len(history), "rows": rows}


def record(report: dict[str, Any], reports_dir: Path,
           threshold_pct: float | None) -> tuple[Path, Path]:
    """Check *report* against the previous run, save ``report.json`` + ``.md`` + ``.html``.

    Returns the JSON and HTML paths (side by side in the report's folder).
    """
    from edgeship.html_report import write_html
    from edgeship.report import render_markdown, save_report

    previous = previous_report(reports_dir, report["device"], report["profile"])
    report["regression"] = check_regression(report, previous, threshold_pct)
    path = save_report(report, reports_dir)
    (path.parent / "report.md").write_text(render_markdown(report))
    rows = trend(reports_dir, report["device"])["rows"]
    return path, write_html(report, path.parent / "report.html", rows)


def regression_line(report: Mapping[str, Any]) -> str:
    """One console line: which artifacts got slower than allowed since the previous run."""
    reg = report.get("regression") or {}
    if not reg.get("checked"):
        return f"regression check: {reg.get('reason', 'not run')}"
    changes = ", ".join(f"{k} {v['change_pct']:+.1f}%" for k, v in reg["artifacts"].items())
    if reg["regressed"]:
        return (f"[red]regression[/]: p50 slower than +{reg['threshold_pct']:g}% vs "
                f"{reg['previous_created']}: {', '.join(reg['regressed'])} ({changes})")
    return f"no regression vs {reg['previous_created']} (p50 {changes or 'not comparable'})"
