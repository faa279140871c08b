"""The deploy report: one JSON document (versioned schema), a console table, saved on disk.

``build_report`` joins what the converters recorded in the bundle manifest (sizes, hashes,
verification) with what the agent measured on the board (latency, memory), judges each artifact
against the profile's budgets, and gives an overall verdict: ``error`` (an artifact did not run
on the board), ``fail`` (a budget exceeded), ``partial`` (everything shipped passed, but the
manifest's ``left_out`` names artifacts of the profile that were not built, loaded or verified)
or ``pass``. The CLI exits :data:`PARTIAL_EXIT` on ``partial`` so scripts can tell it from a
full pass (0).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core import __version__
from core.contracts import REPORT_SCHEMA, Report
from profiles import Budgets

__all__ = ["PARTIAL_EXIT", "REPORT_SCHEMA", "build_fleet_report", "build_report", "fleet_spread", "judge",
           "left_out_line", "render_fleet_table", "render_markdown", "render_table", "save_report"]

PARTIAL_EXIT = 8
"""Exit status of ``edgeship deploy`` / ``convert`` when the verdict is ``partial``."""
_VERDICT_ORDER = ("error", "fail", "partial")


def judge(artifact: Mapping[str, Any], budgets: Budgets) -> dict[str, dict[str, Any]]:
    """Each budget the profile sets → ``{"limit", "value", "ok"}`` for this artifact."""
    size_mb = artifact["size_bytes"] / 1e6
    checks = {
        "max_size_mb": (budgets.max_size_mb, size_mb),
        "max_accuracy_drop": (budgets.max_accuracy_drop, artifact.get("accuracy_drop")),
        "p99_ms": (budgets.p99_ms, (artifact.get("latency_ms") or {}).get("p99")),
        "peak_rss_mb": (budgets.peak_rss_mb, artifact.get("peak_rss_mb")),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, (limit, value) in checks.items():
        if limit is None or value is None:
            continue
        out[name] = {"limit": limit, "value": round(float(value), 4), "ok": float(value) <= limit}
    return out


_MEASURED_EXTRA = ("import_ms", "warmup_s", "measured_s", "batch", "batch_note",
                   "latency_per_sample_ms", "pinned_cpus", "samples_ms", "samples_total",
                   "histogram", "stability", "thermal", "power", "op_profile", "trtexec",
                   "tensorrt", "board_state")


def _accelerator(row: dict[str, Any], accel: Any) -> None:
    """Where the artifact really ran (``ran_on``); an accelerator the profile asked for but the run
    did not use fails the row (``runtime.accelerator: required``) or warns (``preferred``)."""
    if not isinstance(accel, Mapping):
        return
    row["ran_on"], row["accelerator"] = accel.get("executed_by"), dict(accel)
    if accel.get("ok", True) or not accel.get("requested"):
        return
    reason = (f"accelerator requested, ran on {accel.get('device')}: "
              f"{accel.get('reason') or 'no reason given'}")
    if accel.get("policy") == "required":
        row["budgets"]["accelerator"] = {"limit": "required", "value": accel.get("device"),
                                         "ok": False, "reason": reason}
    elif accel.get("policy") == "preferred":
        row.setdefault("warnings", []).append(reason)


def _artifact_row(entry: Mapping[str, Any], measured: Mapping[str, Any] | None,
                  budgets: Budgets) -> dict[str, Any]:
    ver = entry.get("verification", {})
    row: dict[str, Any] = {
        "key": entry["key"], "format": entry["format"], "precision": entry["precision"],
        "file": entry["file"], "size_bytes": entry["size_bytes"], "sha256": entry["sha256"],
        "accuracy": ver.get("accuracy"), "accuracy_drop": ver.get("accuracy_drop"),
        "top1_agreement": ver.get("top1_agreement"), "max_abs_drift": ver.get("max_abs_drift"),
        "cosine": ver.get("cosine"), "host_latency_ms": entry.get("host_latency_ms"),
        "quantization": entry.get("quantization"), "fallback": entry.get("fallback"),
        "slower_than_fp32": entry.get("slower_than_fp32"), "requested": entry.get("requested"),
    }
    if measured is None or not measured.get("ok"):
        error = (measured or {}).get("error") or "not measured on the board"
        row.update(ok=False, error=error, latency_ms=None, peak_rss_mb=None, verdict="error")
        return row
    row.update(
        ok=True, error=None,
        runtime=measured["runtime"], runtime_version=measured["runtime_version"],
        providers=measured.get("providers"), threads=measured.get("threads"),
        load_ms=measured["load_ms"], first_inference_ms=measured["first_inference_ms"],
        warmup=measured["warmup"], runs=measured["runs"], latency_ms=measured["latency_ms"],
        throughput_ips=measured.get("throughput_ips"), rss_mb=measured["rss_mb"],
        peak_rss_mb=measured["rss_mb"]["peak"],
    )
    row.update({k: measured.get(k) for k in _MEASURED_EXTRA})
    row["budgets"] = judge(row, budgets)
    _accelerator(row, measured.get("accelerator"))
    row["verdict"] = "pass" if all(c["ok"] for c in row["budgets"].values()) else "fail"
    return row


def build_report(*, device: str, board: Mapping[str, Any], manifest: Mapping[str, Any],
                 bundle_reused: bool, ship: Mapping[str, Any], agent: Mapping[str, Any],
                 budgets: Budgets) -> dict[str, Any]:
    """Join manifest, ship result and agent figures into the report document."""
    measured = {r["key"]: r for r in agent.get("results", [])}
    rows = [_artifact_row(a, measured.get(a["key"]), budgets) for a in manifest["artifacts"]]
    left_out = [dict(lo) for lo in manifest.get("left_out") or []]
    verdicts = {r["verdict"] for r in rows} | ({"partial"} if left_out else set())
    report = {
        "schema": REPORT_SCHEMA,
        "edgeship": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "board": dict(board),
        "profile": manifest["profile"]["name"],
        "bundle": {"id": manifest["bundle_id"], "reused": bundle_reused,
                   "source": manifest["source"], "data": manifest.get("data"),
                   "reference": manifest.get("reference"), "tools": manifest.get("tools")},
        "ship": dict(ship),
        "device_facts": agent.get("device", {}),
        "agent_version": agent.get("agent_version"),
        "budgets": budgets.model_dump(mode="json"),
        "artifacts": rows,
        "left_out": left_out,
        "verdict": next((v for v in _VERDICT_ORDER if v in verdicts), "pass"),
    }
    Report.model_validate(report)  # the contract readers rely on (core.contracts)
    return report


def left_out_line(item: Mapping[str, Any]) -> str:
    """``stage (tool): cause [tried …]`` of one manifest ``left_out`` entry."""
    tried = f" [tried {', '.join(item['tried'])}]" if item.get("tried") else ""
    instead = (f"; {item['delivered_instead']} delivered instead"
               if item.get("delivered_instead") else "")
    return f"{item['stage']} ({item['tool']}): {item['cause']}{tried}{instead}"


def save_report(report: Mapping[str, Any], reports_dir: Path) -> Path:
    """Write ``report.json`` under ``reports_dir/<device>/<timestamp>/``; return its path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = reports_dir / report["device"] / stamp
    n = 1
    while folder.exists():  # two deploys within one second
        n += 1
        folder = reports_dir / report["device"] / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    tmp = folder / ".report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.rename(folder / "report.json")
    return folder / "report.json"


def _fmt(value: Any, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def render_table(report: Mapping[str, Any]):  # -> rich.table.Table
    """The console summary: one row per artifact."""
    from rich.table import Table

    facts = report.get("device_facts", {})
    title = (f"{report['device']} · profile {report['profile']} · bundle {report['bundle']['id']}"
             f" · {facts.get('machine', '?')} {facts.get('cpu', '')}".rstrip())
    table = Table(title=title, title_justify="left")
    for col in ("artifact", "format", "precision", "size", "accuracy", "p50 ms", "p99 ms",
                "peak RSS MB", "runtime", "ran on", "verdict", "notes"):
        table.add_column(col, justify="right" if col not in ("artifact", "format", "precision",
                                                             "runtime", "ran on", "verdict",
                                                             "notes") else "left")
    for row in report["artifacts"]:
        lat = row.get("latency_ms") or {}
        acc = row.get("accuracy")
        acc_txt = _fmt(acc, ".3f") if acc is not None else f"drift {_fmt(row.get('max_abs_drift'), '.2g')}"
        verdict = row["verdict"]
        colour = {"pass": "green", "fail": "red", "error": "red"}.get(verdict, "yellow")
        failed = [k for k, c in (row.get("budgets") or {}).items() if not c["ok"]]
        table.add_row(
            row["key"], row["format"], row["precision"], f"{row['size_bytes'] / 1024:.1f} KiB",
            acc_txt, _fmt(lat.get("p50"), ".3f"), _fmt(lat.get("p99"), ".3f"),
            _fmt(row.get("peak_rss_mb"), ".1f"),
            f"{row.get('runtime', '')} {row.get('runtime_version', '')}".strip() or "—",
            (row.get("accelerator") or {}).get("device") or "—",
            f"[{colour}]{verdict}[/]" + (f" ({', '.join(failed)})" if failed else "")
            + (f" {row['error']}" if row.get("error") else ""),
            _notes(row),
        )
    from rich.markup import escape

    for item in report.get("left_out") or []:  # the tool's message may hold [brackets]
        fmt, _, precision = item["key"].partition("-")
        table.add_row(item["key"], fmt, precision, "—", "—", "—", "—", "—", "—",
                      "[yellow]left out[/]", escape(left_out_line(item)))
    return table


def _notes(row: Mapping[str, Any]) -> str:
    """What the converters flagged: a slow int8, a gate remedy taken."""
    notes = []
    if row.get("slower_than_fp32"):
        notes.append("[yellow]int8 slower than fp32 on the host[/]")
    taken = (row.get("fallback") or {}).get("taken")
    if row.get("requested"):
        notes.append(f"delivered in place of {row['requested']} (its int8 gate failed)")
    elif taken:
        notes.append(f"int8 gate failed; took {taken}")
    accel = (row.get("budgets") or {}).get("accelerator")
    notes += [f"[red]{_first_clause(accel['reason'])}[/]"] if accel else []
    notes += [f"[yellow]{_first_clause(w)}[/]" for w in row.get("warnings") or []]
    return "; ".join(notes)


def _first_clause(reason: str) -> str:
    """``accelerator requested, ran on CPU: TensorRT not installed on the board`` from the full
    reason (the JSON and Markdown keep all of it)."""
    return reason.split(" (", 1)[0].split(";", 1)[0]


# -- fleets ---------------------------------------------------------------------------------
def _fleet_entry(board: Any, result: Any) -> dict[str, Any]:
    """One board of a fleet: ok / failed with its reason, and its figures when it ran."""
    entry: dict[str, Any] = {"board": board.name, "host": board.host, "port": board.port,
                             "profile": board.profile, "ok": result.ok, "reason": result.reason,
                             "seconds": round(result.seconds, 3)}
    if not result.ok:
        return {**entry, "verdict": "failed"}
    report, path = result.value.report, result.value.report_path
    arts = [{"key": r["key"], "verdict": r["verdict"], "error": r.get("error"),
             "p50_ms": (r.get("latency_ms") or {}).get("p50"),
             "p99_ms": (r.get("latency_ms") or {}).get("p99"), "peak_rss_mb": r.get("peak_rss_mb")}
            for r in report["artifacts"]]
    ship = report["ship"]
    return {**entry, "verdict": report["verdict"], "bundle": report["bundle"]["id"],
            "left_out": [lo["key"] for lo in report.get("left_out") or []],
            "bytes_sent": ship["bytes_sent"], "reused": ship["reused"], "artifacts": arts,
            "report": str(path)}


def build_fleet_report(*, device: str, boards: list[Any], results: list[Any], parallel: int,
                       seconds: float) -> dict[str, Any]:
    """The fleet document: ``{"fleet": [one entry per board], "verdict": …}``.

    Verdict: ``pass`` when every board ran and passed its budgets, ``failed`` when a board could
    not be deployed to, else the worst board verdict (``error`` / ``fail`` / ``partial``).
    """
    fleet = [_fleet_entry(b, r) for b, r in zip(boards, results)]
    verdicts = {e["verdict"] for e in fleet}
    ran = [r.value.report for r in results if r.ok]
    verdict = next((v for v in ("failed", *_VERDICT_ORDER) if v in verdicts), "pass")
    return {
        "schema": REPORT_SCHEMA, "edgeship": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device, "parallel": parallel, "seconds": round(seconds, 3),
        "boards": len(fleet), "ok": sum(e["ok"] for e in fleet), "fleet": fleet,
        "spread": fleet_spread(ran),  # per artifact: p50 on each board, unit-to-unit spread
        "verdict": verdict,
    }


def render_fleet_table(report: Mapping[str, Any]):  # -> rich.table.Table
    """The console summary of a fleet deploy: one row per board."""
    from rich.table import Table

    title = (f"fleet {report['device']} · {report['ok']}/{report['boards']} boards ok · "
             f"{report['parallel']} at a time · {report['seconds']:.1f} s")
    table = Table(title=title, title_justify="left")
    for col in ("board", "host", "profile", "sent", "worst p99 ms", "seconds", "result"):
        table.add_column(col, justify="right" if col in ("sent", "worst p99 ms", "seconds") else "left")
    for e in report["fleet"]:
        p99s = [a["p99_ms"] for a in e.get("artifacts", []) if a.get("p99_ms") is not None]
        sent = "—" if not e["ok"] else ("reused" if e["reused"] else f"{e['bytes_sent'] / 1e6:.2f} MB")
        colour = "green" if e["verdict"] == "pass" else "red"
        result = e["verdict"] if e["ok"] else f"failed: {e['reason']}"
        table.add_row(e["board"], f"{e['host']}:{e['port']}", e["profile"], sent,
                      _fmt(max(p99s) if p99s else None, ".3f"), f"{e['seconds']:.1f}",
                      f"[{colour}]{result}[/]")
    return table


def _why_not_accelerated(row: Mapping[str, Any]) -> str:
    accel = (row.get("budgets") or {}).get("accelerator")
    warnings = list(row.get("warnings") or [])
    return "".join(f" ({text})" for text in ([accel["reason"]] if accel else []) + warnings)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: one table row per artifact, then regressions."""
    lines = [f"# edgeship report · {report['device']} · {report['created']}", "",
             f"Profile `{report['profile']}` · bundle `{report['bundle']['id']}` · verdict "
             f"**{report['verdict']}**", "",
             "| artifact | size KiB | accuracy | p50 ms | p99 ms | peak RSS MB | ran on | verdict |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for row in report["artifacts"]:
        lat = row.get("latency_ms") or {}
        lines.append(f"| {row['key']} | {row['size_bytes'] / 1024:.1f} | "
                     f"{_fmt(row.get('accuracy'), '.3f')} | {_fmt(lat.get('p50'), '.3f')} | "
                     f"{_fmt(lat.get('p99'), '.3f')} | {_fmt(row.get('peak_rss_mb'), '.1f')} | "
                     f"{row.get('ran_on') or '—'} | "
                     f"{row['verdict']}{' ' + row['error'] if row.get('error') else ''}"
                     f"{_why_not_accelerated(row)} |")
    for item in report.get("left_out") or []:
        lines.append(f"| {item['key']} | — | — | — | — | — | — | left out: "
                     f"{left_out_line(item).replace('|', '/')} |")
    reg = report.get("regression") or {}
    if reg.get("checked"):
        slow = ", ".join(reg["regressed"]) or "none"
        lines += ["", f"Regressions (p50 > +{reg['threshold_pct']:g} % vs {reg['previous_created']}): "
                      f"{slow}"]
    return "\n".join(lines) + "\n"


def fleet_spread(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per artifact, p50 on each board and the unit-to-unit spread ((max − min) / mean)."""
    out: dict[str, Any] = {}
    for rep in reports:
        for a in rep.get("artifacts", []):
            p50 = (a.get("latency_ms") or {}).get("p50") if a.get("ok") else None
            board = rep.get("device") or (rep.get("board") or {}).get("name", "?")
            out.setdefault(a["key"], {"boards": {}})["boards"][board] = p50
    for entry in out.values():
        vals = [v for v in entry["boards"].values() if v is not None]
        mean = sum(vals) / len(vals) if vals else None
        entry.update(mean_ms=mean, min_ms=min(vals, default=None), max_ms=max(vals, default=None),
                     spread_pct=(max(vals) - min(vals)) / mean * 100 if mean else None)
    return out
