"""``tegrastats`` lines (JetPack 4.x to 6.x) → RAM, CPU, EMC, GPU load, temperatures, power rails.

Formats seen in the field:

* JetPack 4 (Nano): ``POM_5V_IN 2003/2003`` — rails as ``current/average`` mW, no unit;
* JetPack 4 (Xavier): ``VDD_IN 3140/3208``; ``GR3D_FREQ 0%`` without a clock;
* JetPack 5/6 (Orin): ``VDD_IN 5000mW/5000mW``; ``GR3D_FREQ 0%@[0,0]`` per GPC; a timestamp
  prefix; ``-256C`` for sensors that are absent.

The board's total input is ``VDD_IN`` / ``POM_5V_IN`` (the other rails are parts of it); on
boards without either (AGX Orin: ``VIN_SYS_5V0`` plus module rails) the sum of all rails is used
and the summary says so.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["TOTAL_RAILS", "energy_per_inference", "parse_tegrastats_line", "summarize_tegrastats"]

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GPU = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_TEMP = re.compile(r"\b([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?\b")
_NOT_RAILS = {"RAM", "SWAP", "IRAM"}
_NOT_TEMPS = {"PMIC"}  # a fixed 100C placeholder on Xavier/Nano, not a measurement


def parse_tegrastats_line(line: str) -> dict[str, Any]:
    """One line → ``ram_used_mb``, ``ram_total_mb``, ``cpu`` [{load, mhz}|None], ``emc_pct``,
    ``gpu_pct``, ``gpu_mhz``, ``temps_c``, ``rails_mw`` ({name: current mW})."""
    out: dict[str, Any] = {}
    if m := _RAM.search(line):
        out["ram_used_mb"], out["ram_total_mb"] = int(m[1]), int(m[2])
    if m := _CPU.search(line):
        out["cpu"] = [_core(c) for c in m[1].split(",")]
    if m := _EMC.search(line):
        out["emc_pct"] = int(m[1])
        out["emc_mhz"] = int(m[2]) if m[2] else None
    if m := _GPU.search(line):
        out["gpu_pct"] = int(m[1])
        clocks = [int(c) for c in (m[2] or "").split(",") if c]
        out["gpu_mhz"] = max(clocks) if clocks else None
    out["temps_c"] = {name: float(v) for name, v in _TEMP.findall(line) if float(v) > -200}
    out["rails_mw"] = {name: int(cur) for name, cur, _ in _RAIL.findall(line)
                       if name not in _NOT_RAILS and name != "NC"}
    return out


def _core(text: str) -> dict[str, int] | None:
    text = text.strip()
    if text == "off" or "%" not in text:
        return None
    load, _, mhz = text.partition("%@")
    return {"load": int(load.rstrip("%")), "mhz": int(mhz) if mhz.isdigit() else None}


def _total_mw(rails: dict[str, int]) -> tuple[int | None, str]:
    for name in TOTAL_RAILS:
        if name in rails:
            return rails[name], name
    return (sum(rails.values()), "sum of rails") if rails else (None, "no power rails")


def summarize_tegrastats(lines: list[str]) -> dict[str, Any]:
    """Means over *lines*: power (total and per rail), GPU and EMC load, RAM, peak temperature."""
    parsed = [parse_tegrastats_line(x) for x in lines if x.strip()]
    parsed = [p for p in parsed if "ram_used_mb" in p or p["rails_mw"]]
    if not parsed:
        return {"samples": 0}
    totals = [t for t, _ in (_total_mw(p["rails_mw"]) for p in parsed) if t is not None]
    rails: dict[str, list[int]] = {}
    for p in parsed:
        for name, mw in p["rails_mw"].items():
            rails.setdefault(name, []).append(mw)
    temps = [max(v for k, v in p["temps_c"].items() if k not in _NOT_TEMPS)
             for p in parsed if set(p["temps_c"]) - _NOT_TEMPS]
    return {
        "samples": len(parsed),
        "power_mw": _mean(totals), "power_source": _total_mw(parsed[0]["rails_mw"])[1],
        "rails_mw": {k: _mean(v) for k, v in rails.items()},
        "gpu_pct": _mean([p["gpu_pct"] for p in parsed if "gpu_pct" in p]),
        "gpu_mhz": _mean([p["gpu_mhz"] for p in parsed if p.get("gpu_mhz") is not None]),
        "emc_pct": _mean([p["emc_pct"] for p in parsed if "emc_pct" in p]),
        "emc_mhz": _mean([p["emc_mhz"] for p in parsed if p.get("emc_mhz") is not None]),
        "ram_used_mb": _mean([p["ram_used_mb"] for p in parsed if "ram_used_mb" in p]),
        "max_temp_c": max(temps) if temps else None,
    }


def energy_per_inference(power_mw: float | None, seconds: float, inferences: int) -> float | None:
    """Millijoules per inference from an average power over a measured span."""
    if power_mw is None or inferences <= 0 or seconds <= 0:
        return None
    return round(power_mw / 1000.0 * seconds / inferences * 1000.0, 6)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None
