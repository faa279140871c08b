"""Raspberry Pi ``vcgencmd`` answers → temperature, ARM clock, throttling flags.

``get_throttled`` is a bit field (Raspberry Pi documentation): bits 0-3 are the state *now*,
bits 16-19 whether it *has occurred* since boot.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["THROTTLE_BITS", "decode_throttled", "parse_vcgencmd"]

THROTTLE_BITS = {0: "under_voltage", 1: "arm_freq_capped", 2: "throttled",
                 3: "soft_temp_limit", 16: "under_voltage_occurred",
                 17: "arm_freq_capped_occurred", 18: "throttling_occurred",
                 19: "soft_temp_limit_occurred"}
_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+)")
_TEMP = re.compile(r"temp=(-?\d+(?:\.\d+)?)'C")
_CLOCK = re.compile(r"frequency\((\d+)\)=(\d+)")


def decode_throttled(value: int) -> dict[str, Any]:
    """The flags set in a ``get_throttled`` value, and whether the CPU is limited now/ever."""
    flags = [name for bit, name in THROTTLE_BITS.items() if value >> bit & 1]
    return {"raw": hex(value), "flags": flags, "now": bool(value & 0xF),
            "since_boot": bool(value & 0xF000F)}


def parse_vcgencmd(text: str) -> dict[str, Any]:
    """Every answer found in *text* (one or more commands' output, in order)."""
    out: dict[str, Any] = {}
    throttled = [int(v, 16) for v in _THROTTLED.findall(text)]
    if throttled:
        out["throttled"] = [decode_throttled(v) for v in throttled]
    temps = [float(v) for v in _TEMP.findall(text)]
    if temps:
        out["temp_c"] = temps
    clocks = [int(hz) / 1e6 for _, hz in _CLOCK.findall(text)]
    if clocks:
        out["arm_mhz"] = clocks
    return out
