"""The deploy report as one self-contained HTML page (inline PNG plots, no external assets).

``render_html(report, history_rows)`` shows: the verdict, one row per artifact (the same numbers
as ``report.json``), regressions vs the previous run, the device fingerprint, and the plots —
latency distribution and CDF, slowest operators, size–latency–accuracy, history on this board,
temperature — each in ``<figure data-plot="…">``. ``render_fleet_section(reports)`` puts
several boards' reports side by side with the unit-to-unit spread.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _plots
from .report import fleet_spread, left_out_line

__all__ = ["PLOTS", "render_fleet_section", "render_html", "write_fleet_html",
           "write_html"]

PLOTS = ("latency", "ops", "tradeoff", "history", "thermal")
_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222}
table{border-collapse:collapse;margin:8px 0 18px}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right;white-space:nowrap}th{background:#f3f3f3}.fingerprint td{text-align:left}td.l,th.l{text-align:left}.pass{color:#17803d}
.fail,.error,.regressed{color:#c62828;font-weight:600}.partial{color:#b26a00;font-weight:600}figure{margin:10px 0 22px}
figcaption{color:#555;font-size:12px}img{max-width:100%}.note{color:#666;font-size:12px}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px}"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def num(value: Any, spec: str = ".3f") -> str:
    """How every figure is printed on the page (tests compare against the JSON this way)."""
    return "—" if value is None else format(value, spec)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    th = "".join(('<th class="l">' if i == 0 else "<th>") + f"{_e(h)}</th>"
                 for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(('<td class="l">' if i == 0 else "<td>") + f"{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{th}</tr>{body}</table>'


def _figure(name: str, png: str | None, caption: str) -> str:
    if png is None:
        return (f'<figure data-plot="{name}" data-empty="true"><p class="note">{_e(caption)}: '
                f'no data for this plot in this report.</p></figure>')
    return (f'<figure data-plot="{name}"><img alt="{_e(caption)}" '
            f'src="data:image/png;base64,{png}"><figcaption>{_e(caption)}</figcaption></figure>')


def _artifact_rows(report: Mapping[str, Any]) -> str:
    rows = []
    for a in report["artifacts"]:
        lat = a.get("latency_ms") or {}
        per = a.get("latency_per_sample_ms") or {}
        failed = [k for k, c in (a.get("budgets") or {}).items() if not c["ok"]]
        verdict = f'<span class="{_e(a["verdict"])}">{_e(a["verdict"])}</span>'
        verdict += f" ({_e(', '.join(failed))})" if failed else ""
        verdict += f" {_e(a['error'])}" if a.get("error") else ""
        rows.append([f'<span data-artifact="{_e(a["key"])}">{_e(a["key"])}</span>',
                     f"{a['size_bytes'] / 1024:.1f} KiB", num(a.get("accuracy")),
                     num(lat.get("p50")), num(lat.get("p90")), num(lat.get("p99")),
                     num(per.get("p50")), _e(a.get("batch") or "—"),
                     num(a.get("throughput_ips"), ".1f"), num(a.get("peak_rss_mb"), ".1f"),
                     num(a.get("load_ms"), ".1f"), num(a.get("first_inference_ms")),
                     _e(" ".join(a.get("providers") or []) or a.get("runtime") or "—"), verdict])
    head = ("artifact", "size", "accuracy", "p50 ms", "p90 ms", "p99 ms", "p50/sample ms",
            "batch", "inf/s", "peak RSS MB", "load ms", "first ms", "ran on", "verdict")
    return _table(head, rows, "artifacts")


def _left_out(report: Mapping[str, Any]) -> str:
    """Artifacts of the profile that are not in the bundle, each with its stage, tool and cause."""

    items = report.get("left_out") or []
    if not items:
        return ""
    rows = [[f'<span data-left-out="{_e(i["key"])}">{_e(i["key"])}</span>',
             '<span class="partial">left out</span>', _e(left_out_line(i))] for i in items]
    return "<h2>Left out of the bundle</h2>" + _table(("artifact", "verdict", "why"), rows,
                                                      "left-out")


def _regression(report: Mapping[str, Any]) -> str:
    reg = report.get("regression") or {}
    if not reg.get("checked"):
        return f'<p class="note">Regression check: {_e(reg.get("reason", "not run"))}.</p>'
    rows = [[_e(k), num(v["previous_p50_ms"]), num(v["p50_ms"]),
             f'<span class="{"regressed" if v["regressed"] else "pass"}">'
             f'{v["change_pct"]:+.1f} %</span>'] for k, v in reg["artifacts"].items()]
    return (f'<p>Compared with {_e(reg["previous_created"])} (bundle '
            f'{_e(reg["previous_bundle"])}); threshold +{reg["threshold_pct"]:g} % on p50.</p>'
            + _table(("artifact", "previous p50 ms", "p50 ms", "change"), rows, "regression"))


def _details(report: Mapping[str, Any]) -> str:
    rows: list[list[str]] = []
    notes: list[str] = []
    basis: set[str] = set()
    for a in report["artifacts"]:
        if not a.get("ok"):
            continue
        th = (a.get("thermal") or {}).get("summary") or {}
        power = a.get("power") or {}
        trt = ((a.get("trtexec") or {}).get("summary") or {}).get("latency_ms") or {}
        stab = a.get("stability") or {}
        if th.get("throttled") is None and th:
            basis.add(f"throttling: {th.get('throttle_basis')}")
        if not power:
            basis.add("power: no tegrastats on this board")
        rows.append([_e(a["key"]), num(th.get("max_temp_c"), ".1f"),
                     _e({True: "yes", False: "no"}.get(th.get("throttled"), "n/a")),
                     num(power.get("power_mw"), ".0f"), num(power.get("energy_mj_per_inference")),
                     num(trt.get("p50")),
                     _e({True: "stable", False: "not stable"}.get(stab.get("stable"), "—"))])
        ops = a.get("op_profile") or {}
        if ops and not ops.get("available"):
            notes.append(f"{a['key']}: no per-op timing — {ops.get('reason')}")
        if ops.get("fallback_to_cpu"):
            names = ", ".join(f"{o['node']} ({o['op']})" for o in ops["fallback_to_cpu"][:12])
            notes.append(f"{a['key']}: ran on CPU instead of the accelerator: {names}")
        if a.get("batch_note"):
            notes.append(f"{a['key']}: batch {a.get('batch')} — {a['batch_note']}")
    head = ("artifact", "max °C", "throttled", "power mW", "mJ/inference", "trtexec p50 ms",
            "stability")
    notes = sorted(basis) + notes
    return _table(head, rows, "board") + "".join(f'<p class="note">{_e(n)}</p>' for n in notes)


def _fingerprint(facts: Mapping[str, Any]) -> str:
    emu = facts.get("emulation") or {}
    keys = ("model", "machine", "cpu", "cores", "ram_mb", "os", "release", "python", "l4t",
            "governor")
    rows = [[_e(k), _e(facts.get(k))] for k in keys if facts.get(k) is not None]
    rows.append(["runtimes", _e(", ".join(f"{k} {v}" for k, v in
                                          (facts.get("runtimes") or {}).items()))])
    jetson = facts.get("jetson") or {}
    if jetson:
        rows.append(["nvpmodel", _e(jetson.get("nvpmodel_parsed") or jetson.get("nvpmodel"))])
        rows.append(["jetson_clocks", _e(jetson.get("jetson_clocks_parsed"))])
    rows.append(["emulated", _e("yes — " + emu.get("note", "") if emu.get("emulated") else "no")])
    return _table(("fact", "value"), rows, "fingerprint")


def render_html(report: Mapping[str, Any], history_rows: Sequence[Mapping[str, Any]] = ()) -> str:
    """The whole page for one board's report."""
    arts = report["artifacts"]
    title = f"edgeship · {report['device']} · {report['created']}"
    parts = [
        f"<h1>{_e(title)}</h1>",
        f'<p>Profile <b>{_e(report["profile"])}</b> · bundle <code>{_e(report["bundle"]["id"])}'
        f'</code> · verdict <span id="verdict" class="{_e(report["verdict"])}">'
        f'{_e(report["verdict"])}</span> · report schema {_e(report["schema"])}</p>',
        _artifact_rows(report), _left_out(report),
        "<h2>Regression vs the previous run</h2>", _regression(report),
        "<h2>Latency</h2>", _figure("latency", _plots.latency_plot(arts),
                                    "Warm latency per artifact: distribution and CDF"),
        "<h2>Operators</h2>", _figure("ops", _plots.ops_plot(arts),
                                      "Slowest operators by mean time per call"),
        "<h2>Trade-off</h2>", _figure("tradeoff", _plots.tradeoff_plot(arts),
                                      "Size, p50 latency and accuracy of each artifact"),
        "<h2>History on this board</h2>", _figure("history", _plots.history_plot(history_rows),
                                                  "p50 per artifact over past deploys of this model "
                                                  "(same board and profile)"),
        "<h2>Board during the runs</h2>", _details(report),
        _figure("thermal", _plots.thermal_plot(arts), "CPU temperature during the runs"),
        "<h2>Device fingerprint</h2>", _fingerprint(report.get("device_facts") or {}),
    ]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def write_html(report: Mapping[str, Any], path: Path,
               history_rows: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write the page atomically (temp file, then rename); return its path."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_html(report, history_rows))
    tmp.rename(path)
    return path


# -- fleets ---------------------------------------------------------------------------------
def render_fleet_section(reports: Sequence[Mapping[str, Any]]) -> str:
    """An HTML section: artifacts × boards (p50 ms) with mean and unit-to-unit spread."""
    spread = fleet_spread(reports)
    boards = [r.get("device") or (r.get("board") or {}).get("name", "?") for r in reports]
    rows = [[_e(k)] + [num(v["boards"].get(b)) for b in boards]
            + [num(v["mean_ms"]), num(v["spread_pct"], ".1f") + " %"] for k, v in spread.items()]
    return ('<section data-fleet="true"><h2>Fleet: p50 ms per board</h2>'
            + _table(("artifact", *boards, "mean", "spread"), rows, "fleet") + "</section>")


def write_fleet_html(fleet: Mapping[str, Any], reports: Sequence[Mapping[str, Any]],
                     path: Path) -> Path:
    """The fleet page: one row per board (ok / failed with reason, link to its own page), then
    p50 per board side by side with the unit-to-unit spread. Written atomically."""
    rows = []
    for e in fleet["fleet"]:
        page = Path(e["report"]).with_name("report.html") if e.get("report") else None
        link = f'<a href="{_e(page.as_uri())}">report</a>' if page and page.exists() else "—"
        rows.append([_e(e["board"]), _e(e["profile"]), _e(e["verdict"]),
                     _e(e.get("reason") or ""), link])
    title = f"edgeship · fleet {fleet['device']} · {fleet['created']}"
    body = (f"<h1>{_e(title)}</h1><p>{fleet['ok']} of {fleet['boards']} boards ok · "
            f"{fleet['parallel']} at a time · {fleet['seconds']:.1f} s · verdict "
            f'<span class="{_e(fleet["verdict"])}">{_e(fleet["verdict"])}</span></p>'
            + _table(("board", "profile", "verdict", "reason", "page"), rows, "boards")
            + (render_fleet_section(reports) if reports else ""))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
                   f"<style>{_CSS}</style></head><body>{body}</body></html>\n")
    tmp.rename(path)
    return path
