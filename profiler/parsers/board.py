"""Turn the agent's raw board-tool output into figures (host side, after parsing its JSON).

``enrich(doc)`` adds, per measured artifact: ``thermal.summary`` (temperatures, clocks,
throttling from ``vcgencmd`` when present), ``power`` (``tegrastats`` over the measured span:
average power and energy per inference), ``trtexec.summary``; and per device: the parsed
``nvpmodel`` mode and whether ``jetson_clocks`` pinned the clocks. Raw ``tegrastats`` lines are
dropped once parsed (a few are kept as evidence) to keep the report small.
"""

from __future__ import annotations

import re
from typing import Any

from runtimes.jetpack_facts import jetson_software, parse_packages

from .tegrastats import energy_per_inference, summarize_tegrastats
from .trtexec import parse_trtexec
from .vcgencmd import parse_vcgencmd

__all__ = ["board_state", "enrich", "parse_jetson_clocks", "parse_nvpmodel", "thermal_summary"]

_KEEP_LINES = 3


def enrich(doc: dict[str, Any]) -> dict[str, Any]:
    """Add parsed figures to the agent document in place; return it."""
    device = doc.get("device", {})
    jetson = device.get("jetson")
    if isinstance(jetson, dict):
        jetson["nvpmodel_parsed"] = parse_nvpmodel(jetson.get("nvpmodel") or "")
        jetson["jetson_clocks_parsed"] = parse_jetson_clocks(jetson.get("jetson_clocks") or "")
        jetson["software"] = jetson_software(device.get("l4t") or "",
                                             parse_packages(jetson.get("packages") or ""))
    for result in doc.get("results", []):
        if result.get("ok"):
            _enrich_result(result)
            if isinstance(jetson, dict):
                result["board_state"] = board_state(jetson, result.get("power") or {})
    return doc


def board_state(jetson: dict[str, Any], power: dict[str, Any]) -> dict[str, Any]:
    """The Jetson's state while one artifact ran: power mode, clocks pinned or not, GPU and EMC
    clocks and load, power and energy per inference (tegrastats over the measured runs)."""
    mode = jetson.get("nvpmodel_parsed") or {}
    clocks = jetson.get("jetson_clocks_parsed") or {}
    return {"nvpmodel": mode.get("mode"), "nvpmodel_id": mode.get("id"),
            "jetson_clocks": clocks.get("active"),
            "gpu_mhz": power.get("gpu_mhz") or clocks.get("gpu_mhz"),
            "emc_mhz": power.get("emc_mhz") or clocks.get("emc_mhz"),
            "gpu_pct": power.get("gpu_pct"), "emc_pct": power.get("emc_pct"),
            "power_mw": power.get("power_mw"), "power_source": power.get("power_source"),
            "energy_mj_per_inference": power.get("energy_mj_per_inference"),
            "samples": power.get("samples", 0),
            "basis": "tegrastats during the measured runs" if power.get("samples") else
                     "no tegrastats samples (tool absent or no sample in the window)"}


def _enrich_result(result: dict[str, Any]) -> None:
    thermal = result.get("thermal")
    if isinstance(thermal, dict):
        thermal["summary"] = thermal_summary(thermal)
    tegra = result.get("tegrastats")
    if isinstance(tegra, dict) and tegra.get("lines"):
        result["power"] = _power(result, tegra, thermal or {})
        tegra["lines"] = tegra["lines"][:_KEEP_LINES]
    trt = result.get("trtexec")
    if isinstance(trt, dict) and trt.get("ran"):
        trt["summary"] = parse_trtexec("\n".join(trt.get("output_tail") or []))


def _power(result: dict[str, Any], tegra: dict[str, Any], thermal: dict[str, Any]) -> dict[str, Any]:
    lo, hi = thermal.get("measure_started_s"), thermal.get("measure_ended_s")
    stamped = tegra["lines"]
    inside = [line for t, line in stamped if lo is None or hi is None or lo <= t <= hi]
    lines = inside or [line for _, line in stamped]
    summary = summarize_tegrastats(lines)
    inferences = int(result.get("runs") or 0) * int(result.get("batch") or 1)
    summary["window"] = "measured runs" if inside else "whole run (no sample inside the window)"
    summary["energy_mj_per_inference"] = energy_per_inference(
        summary.get("power_mw"), float(result.get("measured_s") or 0), inferences)
    return summary


def thermal_summary(thermal: dict[str, Any]) -> dict[str, Any]:
    """Peak temperature, clock range, and whether the board throttled during the run."""
    points = thermal.get("timeline") or []
    snaps = [thermal.get("before") or {}, thermal.get("after") or {}]
    temps = [p["temp_c"] for p in points if p.get("temp_c") is not None]
    temps += [max(s["temps_c"].values()) for s in snaps if s.get("temps_c")]
    freqs = [p["freq_mhz"] for p in points if p.get("freq_mhz") is not None]
    raw = [p.get("throttled") or "" for p in points]
    raw += [(s.get("vcgencmd") or {}).get("get_throttled") or "" for s in snaps]
    flags = parse_vcgencmd("\n".join(raw)).get("throttled", [])
    return {
        "max_temp_c": max(temps) if temps else None,
        "min_freq_mhz": min(freqs) if freqs else None,
        "max_freq_mhz": max(freqs) if freqs else None,
        "throttled": any(f["now"] for f in flags) if flags else None,
        "throttle_flags": sorted({n for f in flags for n in f["flags"]}),
        "throttle_basis": "vcgencmd get_throttled" if flags else "not measurable on this board",
        "samples": len(points),
    }


def parse_nvpmodel(text: str) -> dict[str, Any]:
    """``nvpmodel -q`` → ``{"mode": "MAXN", "id": 0}`` (empty when absent)."""
    m = re.search(r"NV Power Mode:\s*(\S+)(?:\s+(\d+))?", text)
    if not m:
        return {}
    return {"mode": m[1], "id": int(m[2]) if m[2] else None}


def parse_jetson_clocks(text: str) -> dict[str, Any]:
    """``jetson_clocks --show`` → whether every CPU runs pinned at its maximum (clocks locked)."""
    cpus = re.findall(r"^cpu\d+:\s+Online=1\s.*?MinFreq=(\d+) MaxFreq=(\d+)", text, re.M)
    if not cpus:
        return {"active": None, "reason": "no jetson_clocks output (needs root)"}
    out: dict[str, Any] = {"active": all(lo == hi for lo, hi in cpus), "cpus": len(cpus)}
    for unit in ("GPU", "EMC"):
        m = re.search(rf"^{unit} MinFreq=(\d+) MaxFreq=(\d+) CurrentFreq=(\d+)", text, re.M)
        if m:
            out[unit.lower() + "_mhz"] = round(int(m[3]) / 1e6, 1)
            out[unit.lower() + "_max_mhz"] = round(int(m[2]) / 1e6, 1)
    return out
