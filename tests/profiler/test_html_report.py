"""The HTML report: self-contained, every plot present, the numbers those of the JSON."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from profiler.html_report import (
    PLOTS,
    num,
    render_fleet_section,
    render_html,
    write_html,
)
from profiler.report import fleet_spread


def _row(key: str, p50: float, *, ok: bool = True, size: int = 100_000) -> dict[str, Any]:
    if not ok:
        return {"key": key, "ok": False, "error": "segfault", "size_bytes": size,
                "verdict": "error", "accuracy": None, "latency_ms": None, "peak_rss_mb": None}
    samples = [p50 * (0.9 + 0.002 * i) for i in range(100)]
    return {"key": key, "ok": True, "error": None, "size_bytes": size, "accuracy": 0.975,
            "latency_ms": {"p50": p50, "p90": p50 * 1.1, "p99": p50 * 1.2}, "verdict": "pass",
            "latency_per_sample_ms": {"p50": p50}, "batch": 1, "throughput_ips": 1000 / p50,
            "peak_rss_mb": 61.25, "load_ms": 3.5, "first_inference_ms": 1.234,
            "providers": ["CPUExecutionProvider"], "samples_ms": samples, "budgets": {},
            "op_profile": {"available": True, "top": [
                {"node": "conv1", "op": "Conv", "mean_us": 80.0},
                {"node": "fc", "op": "Gemm", "mean_us": 12.5}], "fallback_to_cpu": None},
            "thermal": {"summary": {"max_temp_c": 51.0, "throttled": False},
                        "timeline": [{"t": 0.5, "temp_c": 50.0}, {"t": 1.0, "temp_c": 51.0}]},
            "power": {"power_mw": 4100.0, "energy_mj_per_inference": 0.82}}


def _report(device: str = "sim", slow: float = 1.0) -> dict[str, Any]:
    return {"schema": 2, "device": device, "created": "2026-01-02T03:04:05+00:00",
            "profile": "sim", "bundle": {"id": "abc123"}, "verdict": "error",
            "artifacts": [_row("onnx-fp32", 0.5 * slow), _row("tflite-int8", 0.25 * slow,
                                                                    size=30_000),
                          _row("onnx-int8", 0, ok=False)],
            "regression": {"checked": True, "threshold_pct": 10.0, "previous_bundle": "old",
                           "previous_created": "2026-01-01T00:00:00+00:00", "regressed":
                           ["onnx-fp32"], "artifacts": {"onnx-fp32": {
                               "p50_ms": 0.5, "previous_p50_ms": 0.4, "change_pct": 25.0,
                               "regressed": True}}},
            "device_facts": {"machine": "aarch64", "cpu": "Cortex-A72", "runtimes":
                             {"onnxruntime": "1.31.1"}, "emulation": {
                                 "emulated": True, "note": "RSS inflated under qemu-user"}}}


HISTORY = [{"created": f"2026-01-0{d}T00:00:00", "artifact": "onnx-fp32", "p50_ms": 0.4 + d / 100}
           for d in range(1, 4)]


def test_every_plot_is_an_inline_png(tmp_path: Path) -> None:
    page = write_html(_report(), tmp_path / "report.html", HISTORY).read_text()
    for name in PLOTS:
        m = re.search(rf'<figure data-plot="{name}"><img alt="[^"]*" '
                      r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
        assert m, name
        assert base64.b64decode(m[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_numbers_match_the_json() -> None:
    rep = _report()
    page = render_html(rep, HISTORY)
    for art in rep["artifacts"]:
        assert f'data-artifact="{art["key"]}"' in page
        if art["ok"]:
            row = page.split(f'data-artifact="{art["key"]}"')[1].split("</tr>")[0]
            for value in (art["latency_ms"]["p50"], art["latency_ms"]["p99"]):
                assert f"<td>{num(value)}</td>" in row
            assert f"<td>{num(art['peak_rss_mb'], '.1f')}</td>" in row
    assert "segfault" in page and "+25.0 %" in page and 'class="regressed"' in page
    assert "qemu-user" in page and '<span id="verdict" class="error">error</span>' in page


def test_missing_data_says_so_instead_of_an_empty_chart() -> None:
    rep = _report()
    for art in rep["artifacts"]:
        art.pop("op_profile", None)
        art.pop("thermal", None)
    page = render_html(rep, [])
    assert '<figure data-plot="ops" data-empty="true">' in page
    assert '<figure data-plot="history" data-empty="true">' in page
    assert '<figure data-plot="latency"><img' in page


def test_fleet_section_shows_unit_to_unit_spread() -> None:
    reports = [_report("pi-a", 1.0), _report("pi-b", 1.2)]
    spread = fleet_spread(reports)["onnx-fp32"]
    assert spread["boards"] == {"pi-a": 0.5, "pi-b": 0.6}
    assert spread["spread_pct"] == (0.6 - 0.5) / 0.55 * 100
    html = render_fleet_section(reports)
    assert "pi-a" in html and "pi-b" in html and f"{spread['spread_pct']:.1f} %" in html
    assert fleet_spread(reports)["onnx-int8"]["mean_ms"] is None


@pytest.mark.parametrize(("low", "high"), [(1.2, 1.5), (0.05, 40.0)])
def test_log_latency_axis_has_plain_labels_that_do_not_pile_up(low: float, high: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from profiler._plots import _plain_log_ticks

    fig, ax = plt.subplots()
    ax.plot([low, high], [0, 1])
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis, low, high)
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    major = [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    plt.close(fig)
    assert 3 <= len(major) <= 12, major
    assert all(float(t.replace("\u2212", "-")) > 0 for t in major), major  # plain numbers
    assert minor == []
