"""``trtexec`` output → its performance summary (TensorRT 7 to 10).

``=== Performance summary ===`` is followed by ``Throughput: N qps`` and lines such as
``Latency: min = a ms, max = b ms, mean = c ms, median = d ms, percentile(99%) = e ms``; TensorRT
8.6+ adds the 90% and 95% percentiles. Older releases label host latency ``End-to-End Host
Latency``. Only what is printed is returned; nothing is guessed.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_trtexec"]

_LINE = re.compile(r"\] \[I\] ([A-Za-z0-9 -]+?): (.+)$")
_STAT = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\)) = ([\d.eE+-]+) ms")
_KEYS = {"Latency": "latency_ms", "End-to-End Host Latency": "end_to_end_ms",
         "Enqueue Time": "enqueue_ms", "H2D Latency": "h2d_ms", "GPU Compute Time": "gpu_compute_ms",
         "D2H Latency": "d2h_ms"}


def parse_trtexec(text: str) -> dict[str, Any]:
    """The summary as ``{"throughput_qps", "latency_ms": {min, max, mean, p50, p99…}, …}``.

    ``{"found": False}`` when the output has no performance summary (e.g. the build failed).
    """
    lines = text.splitlines()
    start = next((i for i, x in enumerate(lines) if "=== Performance summary ===" in x), None)
    if start is None:
        return {"found": False}
    out: dict[str, Any] = {"found": True, "warnings": []}
    for line in lines[start + 1:]:
        if "] [W] " in line:
            out["warnings"].append(line.split("] [W] ", 1)[1].strip(" *"))
            continue
        m = _LINE.search(line)
        if not m:
            continue
        name, rest = m[1].strip(), m[2]
        if name == "Throughput":
            out["throughput_qps"] = float(rest.split()[0])
        elif name in _KEYS:
            out[_KEYS[name]] = _stats(rest)
        elif name.startswith("Total ") and rest.endswith(" s"):
            out[name[6:].lower().replace(" ", "_") + "_s"] = float(rest[:-2])
    return out


def _stats(text: str) -> dict[str, float]:
    stats: dict[str, float] = {}
    for label, pct, value in _STAT.findall(text):
        key = "p50" if label == "median" else (f"p{float(pct):g}" if pct else label)
        stats[key] = float(value)
    return stats
