"""Past deploys on a board: the saved reports, the trend, and the regression check.

Reports live at ``reports/<device>/<timestamp>/report.json`` (``save_report``); fleet documents
saved beside them (no ``artifacts``) are skipped. History is keyed by **board, profile, model
and artifact**: the model is its source's sha256 (``bundle.source.sha256``), so deploying
another model to the same board starts its own history ("first run of this model on this
board") instead of comparing against the previous model's figures. A *regression* is an
artifact whose warm p50 is slower than in the previous report of the same board, profile and
model by more than the budget's ``p50_regression_pct`` (default 10 %) and by more than
:data:`NOISE_FLOOR_MS` (a sub-0.1 ms model's p50 moves by tens of percent between runs).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigError

__all__ = ["check_regression", "history_rows", "load_history", "model_key", "model_name",
           "models", "previous_report", "record", "regression_line", "trend"]

log = logging.getLogger(__name__)


def model_key(report: Mapping[str, Any]) -> str | None:
    """The model a report measured: its source's sha256 (``None`` in reports without one)."""
    source = (report.get("bundle") or {}).get("source") or {}
    return source.get("sha256")


def model_name(report: Mapping[str, Any]) -> str:
    """A short human name: the source file's name (or ``module:function``) and its hash."""
    source = (report.get("bundle") or {}).get("source") or {}
    ref = str(source.get("ref") or "?")
    name = ref if ":" in ref and "/" not in ref.split(":")[0] else Path(ref).name
    sha = model_key(report)
    return f"{name} ({sha[:12]})" if sha else name


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


def previous_report(reports_dir: Path, device: str, profile: str,
                    model: str | None = None) -> tuple[Path, dict] | None:
    """The latest saved report of *device* made with *profile* for *model* (its source sha256;
    ``None`` matches reports without one), or ``None``."""
    same = [(p, d) for p, d in load_history(reports_dir, device)
            if d.get("profile") == profile and model_key(d) == model]
    return same[-1] if same else None


def _first_run_reason(reports_dir: Path, device: str, report: Mapping[str, Any]) -> str:
    """Why there is nothing to compare with: a new model, or a model new to this profile."""
    history = load_history(reports_dir, device)
    name = model_name(report)
    if any(model_key(d) == model_key(report) for _, d in history):
        return f"first run of this model ({name}) with profile {report['profile']} on this board"
    if history:
        return f"first run of this model ({name}) on this board"
    return f"first run on this board ({name})"


NOISE_FLOOR_MS = 0.05
"""A p50 change smaller than this is timer and scheduling noise, whatever its percentage: a
0.06 ms model measured 0.08 ms on the next deploy (+33 %) is not a regression."""


def _p50(row: Mapping[str, Any]) -> float | None:
    return (row.get("latency_ms") or {}).get("p50") if row.get("ok") else None


def check_regression(report: Mapping[str, Any], previous: tuple[Path, Mapping] | None,
                     threshold_pct: float | None, first_run: str | None = None) -> dict[str, Any]:
    """Per artifact, p50 now vs the previous run of the same model; ``regressed`` lists the
    slower-than-allowed. *first_run* says why there is no previous run (the default: none on
    this board, profile and model)."""
    if previous is None or threshold_pct is None:
        why = (first_run or "no previous run of this model on this board and profile"
               if previous is None else "disabled")
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
                            "change_pct": round(change, 2),
                            "regressed": change > threshold_pct and now - then > NOISE_FLOOR_MS}
    return {"checked": True, "threshold_pct": threshold_pct, "noise_floor_ms": NOISE_FLOOR_MS,
            "previous": str(path),
            "model": model_name(report),
            "previous_created": prev.get("created"), "previous_bundle": prev["bundle"]["id"],
            "artifacts": rows, "regressed": sorted(k for k, v in rows.items() if v["regressed"])}


def trend(reports_dir: Path, device: str, *, model: str | None = None,
          profile: str | None = None) -> dict[str, Any]:
    """The history of *device* as rows (one per deploy × artifact) for tables and plots; only
    *model*'s (a sha256, or a prefix of it) and *profile*'s when given."""
    history = load_history(reports_dir, device)
    if not history:
        raise ConfigError(f"no saved reports for {device!r} under {reports_dir}; run "
                          f"`edgeship deploy --device {device}` first")
    picked = [(p, d) for p, d in history
              if (model is None or (model_key(d) or "").startswith(model))
              and (profile is None or d.get("profile") == profile)]
    if not picked:
        known = ", ".join(m["name"] for m in models(reports_dir, device))
        raise ConfigError(f"no saved reports of model {model!r} on {device!r}; its models: "
                          f"{known}")
    rows = []
    for path, doc in picked:
        for art in doc["artifacts"]:
            lat = art.get("latency_ms") or {}
            rows.append({"created": doc.get("created"), "report": str(path),
                         "bundle": doc["bundle"]["id"], "profile": doc.get("profile"),
                         "model": model_key(doc), "model_name": model_name(doc),
                         "artifact": art["key"], "p50_ms": lat.get("p50"),
                         "p99_ms": lat.get("p99"), "peak_rss_mb": art.get("peak_rss_mb"),
                         "accuracy": art.get("accuracy"), "verdict": art.get("verdict")})
    return {"device": device, "deploys": len(picked), "rows": rows}


def models(reports_dir: Path, device: str) -> list[dict[str, Any]]:
    """The models deployed to *device*, oldest first: sha256, name, profiles, deploys, last run."""
    found: dict[tuple[str | None, str], dict[str, Any]] = {}
    for _, doc in load_history(reports_dir, device):
        entry = found.setdefault((model_key(doc), str(doc.get("profile"))), {
            "model": model_key(doc), "name": model_name(doc), "profile": doc.get("profile"),
            "deploys": 0, "first": doc.get("created"), "artifacts": []})
        entry["deploys"] += 1
        entry["last"], entry["verdict"] = doc.get("created"), doc.get("verdict")
        entry["artifacts"] = [a["key"] for a in doc["artifacts"]]
    return list(found.values())


def record(report: dict[str, Any], reports_dir: Path,
           threshold_pct: float | None) -> tuple[Path, Path]:
    """Check *report* against the previous run of the same board, profile and model, save
    ``report.json`` + ``.md`` + ``.html`` (its history plot: this model's runs only).

    Returns the JSON and HTML paths (side by side in the report's folder).
    """
    from profiler.html_report import write_html
    from profiler.report import render_markdown, save_report

    device, profile, model = report["device"], report["profile"], model_key(report)
    previous = previous_report(reports_dir, device, profile, model)
    first = None if previous else _first_run_reason(reports_dir, device, report)
    report["regression"] = check_regression(report, previous, threshold_pct, first)
    path = save_report(report, reports_dir)
    (path.parent / "report.md").write_text(render_markdown(report))
    rows = history_rows(reports_dir, report)
    return path, write_html(report, path.parent / "report.html", rows)


def history_rows(reports_dir: Path, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trend rows *report*'s history plot shows: same board, profile and model."""
    return [r for r in trend(reports_dir, report["device"], profile=report["profile"])["rows"]
            if r["model"] == model_key(report)]


def regression_line(report: Mapping[str, Any]) -> str:
    """One console line: which artifacts got slower than allowed since the previous run."""
    reg = report.get("regression") or {}
    if not reg.get("checked"):
        return f"regression check: {reg.get('reason', 'not run')}"
    changes = ", ".join(f"{k} {v['change_pct']:+.1f}%" for k, v in reg["artifacts"].items())
    since = f"the previous run of {reg['model']}" if reg.get("model") else "the previous run"
    if reg["regressed"]:
        return (f"[red]regression[/]: p50 slower than +{reg['threshold_pct']:g}% vs {since} "
                f"({reg['previous_created']}): {', '.join(reg['regressed'])} ({changes})")
    return (f"no regression vs {since} ({reg['previous_created']}; p50 "
            f"{changes or 'not comparable'})")
