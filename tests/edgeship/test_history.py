"""History of saved reports, the regression check, and record() writing JSON + MD + HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgeship.errors import ConfigError
from edgeship.history import check_regression, load_history, previous_report, record, trend


def _report(p50: float, created: str, profile: str = "sim") -> dict[str, Any]:
    art = {"key": "onnx-fp32", "ok": True, "size_bytes": 1000, "verdict": "pass",
           "accuracy": 0.97, "latency_ms": {"p50": p50, "p99": p50 * 2}, "peak_rss_mb": 50.0,
           "format": "onnx", "precision": "fp32"}
    return {"schema": 2, "device": "sim", "created": created, "profile": profile,
            "bundle": {"id": f"b{p50}"}, "verdict": "pass", "artifacts": [art]}


def _save(reports: Path, doc: dict[str, Any], stamp: str) -> Path:
    folder = reports / "sim" / stamp
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(doc))
    return folder / "report.json"


def test_regression_only_against_same_board_and_profile(tmp_path: Path) -> None:
    _save(tmp_path, _report(1.0, "2026-01-01T00:00:00"), "a")
    _save(tmp_path, _report(9.0, "2026-01-02T00:00:00", profile="other"), "b")
    (tmp_path / "sim" / "c").mkdir()
    (tmp_path / "sim" / "c" / "report.json").write_text("{not json")
    _save(tmp_path, {"fleet": [], "device": "sim"}, "d")  # a fleet document: skipped
    assert len(load_history(tmp_path, "sim")) == 2
    prev = previous_report(tmp_path, "sim", "sim")
    assert prev is not None and prev[1]["created"] == "2026-01-01T00:00:00"
    slower = check_regression(_report(1.15, "now"), prev, 10.0)
    assert slower["regressed"] == ["onnx-fp32"]
    assert slower["artifacts"]["onnx-fp32"]["change_pct"] == pytest.approx(15.0)
    assert check_regression(_report(1.05, "now"), prev, 10.0)["regressed"] == []
    assert check_regression(_report(1.0, "now"), None, 10.0)["checked"] is False


def test_record_writes_json_markdown_html_and_trend(tmp_path: Path) -> None:
    _save(tmp_path, _report(1.0, "2026-01-01T00:00:00"), "a")
    path, html = record(_report(2.0, "2026-01-02T00:00:00"), tmp_path, 10.0)
    saved = json.loads(path.read_text())
    assert saved["regression"]["regressed"] == ["onnx-fp32"]
    assert html == path.parent / "report.html" and 'data-plot="history"><img' in html.read_text()
    assert "| onnx-fp32 |" in (path.parent / "report.md").read_text()
    rows = trend(tmp_path, "sim")["rows"]
    assert [r["p50_ms"] for r in rows] == [1.0, 2.0]
    with pytest.raises(ConfigError, match="no saved reports for 'pi'"):
        trend(tmp_path, "pi")
