"""The report's plots: matplotlib (Agg, headless) → base64 PNG strings for an inline ``<img>``.

Each function takes plain report data and returns ``None`` when there is nothing to plot, so the
page says so instead of showing an empty chart. matplotlib is imported inside, only when a
report is rendered.
"""

from __future__ import annotations

import base64
import functools
import io
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["history_plot", "latency_plot", "ops_plot", "thermal_plot", "tradeoff_plot"]

_F = TypeVar("_F", bound=Callable[..., Any])
_MATPLOTLIB = threading.Lock()
"""pyplot and its text parser keep global state: fleet deploys render reports in threads."""


def _serialized(fn: _F) -> _F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _MATPLOTLIB:
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if width > 9 else 1, figsize=(width, height), dpi=90)
    return plt, fig, axes


def _png(plt: Any, fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _samples(row: Mapping[str, Any]) -> list[float]:
    if row.get("samples_ms"):
        return sorted(row["samples_ms"])
    hist = row.get("histogram") or {}
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    return [(a + b) / 2 for a, b, n in zip(edges, edges[1:], counts) for _ in range(n)]


@_serialized
def latency_plot(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Histogram and CDF of warm latency, one line per artifact."""
    series = [(r["key"], _samples(r)) for r in rows if r.get("ok")]
    series = [(k, s) for k, s in series if s]
    if not series:
        return None
    import numpy as np

    low = min(v for _, s in series for v in s if v > 0)
    high = max(v for _, s in series for v in s)
    bins = np.geomspace(low, high * 1.0001, 60)  # log-spaced: the x axis is logarithmic
    plt, fig, (hist_ax, cdf_ax) = _figure(12, 3.8)
    for (key, values), colour in zip(series, _COLOURS):
        hist_ax.hist(values, bins=bins, histtype="step", color=colour, label=key, linewidth=1.5)
        n = len(values)
        cdf_ax.plot(values, [(i + 1) / n for i in range(n)], color=colour, label=key)
    hist_ax.set(xlabel="latency per batch (ms)", ylabel="runs", title="Latency distribution")
    cdf_ax.set(xlabel="latency per batch (ms)", ylabel="fraction of runs ≤ x", title="CDF")
    cdf_ax.axhline(0.99, color="#999", linestyle=":", linewidth=1)
    for ax in (hist_ax, cdf_ax):
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, low, high)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(plt, fig)


def _plain_log_ticks(axis: Any, low: float, high: float) -> None:
    """Plain numbers on a log axis ("0.5 1 2 5"), never "1.2×10⁰ 1.3×10⁰" piled on each other.

    Within one decade the axis is almost linear: a few evenly chosen ticks; across decades,
    1-2-5 steps. Minor ticks keep their marks but get no labels.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    if high / low < 10:
        axis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    else:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


@_serialized
def ops_plot(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The slowest operators (mean µs per call) of every artifact that has an op profile."""
    profiled = [r for r in rows if (r.get("op_profile") or {}).get("top")]
    if not profiled:
        return None
    height = max(2.5, 0.32 * sum(len(r["op_profile"]["top"]) for r in profiled) + 0.8)
    plt, fig, ax = _figure(8, height)
    labels, values, colours = [], [], []
    for row, colour in zip(profiled, _COLOURS):
        for op in reversed(row["op_profile"]["top"]):
            labels.append(f"{row['key']} · {op['node']} ({op['op']})")
            values.append(op["mean_us"])
            colours.append(colour)
    ax.barh(range(len(values)), values, color=colours)
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.set(xlabel="mean time per call (µs)", title="Slowest operators (onnxruntime profiler)")
    ax.grid(axis="x", alpha=0.3)
    return _png(plt, fig)


@_serialized
def tradeoff_plot(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Size vs p50 latency per artifact, labelled with accuracy (or drift)."""
    points = [r for r in rows if r.get("ok") and (r.get("latency_ms") or {}).get("p50")]
    if not points:
        return None
    plt, fig, ax = _figure(8, 4)
    for row, colour in zip(points, _COLOURS):
        x, y = row["size_bytes"] / 1024, row["latency_ms"]["p50"]
        acc = row.get("accuracy")
        label = f"{row['key']}  acc {acc:.3f}" if acc is not None else f"{row['key']}  (drift only)"
        ax.scatter([x], [y], s=90, color=colour, label=label, edgecolor="black", zorder=3)
        ax.annotate(row["key"], (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set(xlabel="artifact size (KiB)", ylabel="p50 latency (ms)",
           title="Size · latency · accuracy per artifact")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(plt, fig)


@_serialized
def history_plot(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """p50 per artifact over past deploys (oldest → newest), one line per model × artifact.

    The report passes one model's rows (``history.history_rows``): different models never
    share a line.
    """
    if not rows:
        return None
    stamps = sorted({r["created"] for r in rows})
    names = sorted({r.get("model_name") or "?" for r in rows})
    plt, fig, ax = _figure(8, 3.6)
    lines = sorted({(r.get("model_name") or "?", r["artifact"]) for r in rows})
    for (name, key), colour in zip(lines, _COLOURS * 4):
        pts = [(stamps.index(r["created"]), r["p50_ms"]) for r in rows
               if (r.get("model_name") or "?", r["artifact"]) == (name, key)
               and r["p50_ms"] is not None]
        if pts:
            label = key if len(names) == 1 else f"{name} · {key}"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colour,
                    label=label)
    ax.set_xticks(range(len(stamps)), [s[5:19].replace("T", " ") for s in stamps],
                  rotation=30, fontsize=7)
    model = f" of {names[0]}" if len(names) == 1 else ""
    ax.set(ylabel="p50 latency (ms)", title=f"History{model} on this board ({len(stamps)} deploys)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(plt, fig)


@_serialized
def thermal_plot(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """CPU temperature during each artifact's run, when the board exposes it."""
    series = [(r["key"], [p for p in (r.get("thermal") or {}).get("timeline") or []
                          if p.get("temp_c") is not None]) for r in rows if r.get("ok")]
    series = [(k, pts) for k, pts in series if pts]
    if not series:
        return None
    plt, fig, ax = _figure(8, 3.2)
    for (key, pts), colour in zip(series, _COLOURS):
        ax.plot([p["t"] for p in pts], [p["temp_c"] for p in pts], color=colour, label=key)
    ax.set(xlabel="seconds into the run", ylabel="°C", title="CPU temperature during the runs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(plt, fig)
