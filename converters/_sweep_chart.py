"""The sweep's Pareto chart: size vs host latency (colour = quality), and latency vs quality.

matplotlib with the Agg back end (no display needed), imported only here. Pareto-optimal
recipes (no other is smaller, faster and at least as accurate) are ringed and labelled in bold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_chart"]


def write_chart(rows: list[dict[str, Any]], out_dir: Path, title: str,
                stem: str = "sweep") -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` into *out_dir*; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    ok = [r for r in rows if r.get("error") is None and r.get("latency_ms") is not None]
    label = "accuracy" if ok and ok[0].get("accuracy") is not None else "cosine vs original"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    sizes = [r["size_bytes"] / 1024 for r in ok]
    lats = [r["latency_ms"] for r in ok]
    quals = [quality(r) for r in ok]
    points = left.scatter(sizes, lats, c=quals, cmap="viridis", s=60, zorder=3)
    fig.colorbar(points, ax=left, label=label)
    right.scatter(lats, quals, c="tab:blue", s=60, zorder=3)
    for r, x, y, q in zip(ok, sizes, lats, quals):
        weight = "bold" if r.get("pareto") else "normal"
        for ax, px, py in ((left, x, y), (right, y, q)):
            ax.annotate(r["name"], (px, py), fontsize=8, weight=weight, xytext=(4, 4),
                        textcoords="offset points")
            if r.get("pareto"):
                ax.scatter([px], [py], s=180, facecolors="none", edgecolors="red", zorder=4)
    left.set(xlabel="artifact size (KiB)", ylabel="host latency, median (ms)",
             title="size vs latency (red ring: Pareto front)")
    right.set(xlabel="host latency, median (ms)", ylabel=label, title=f"latency vs {label}")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    for path in paths:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return paths


def quality(row: dict[str, Any]) -> float:
    """Accuracy when labels were given, else cosine to the original's outputs."""
    return row["accuracy"] if row.get("accuracy") is not None else row["cosine"]
