"""History of saved reports, the regression check, and record() writing JSON + MD + HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from profiler.history import check_regression, load_history, previous_report, record, trend


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


def test_a_sub_millisecond_model_is_not_flagged_for_timer_noise(tmp_path: Path) -> None:
    """mtcnn-rnet measures 0.06 ms on one deploy and 0.08 ms on the next (+33 %): noise, not a
    regression; the same share on a 1 ms model is one."""
    prev = (_save(tmp_path, _report(0.06, "2026-01-01T00:00:00"), "a"),
            _report(0.06, "2026-01-01T00:00:00"))
    tiny = check_regression(_report(0.08, "now"), prev, 10.0)
    assert tiny["regressed"] == [] and tiny["artifacts"]["onnx-fp32"]["change_pct"] > 30
    assert tiny["noise_floor_ms"] == 0.05
    big = (prev[0], _report(1.0, "2026-01-01T00:00:00"))
    assert check_regression(_report(1.33, "now"), big, 10.0)["regressed"] == ["onnx-fp32"]


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


def _model_report(model: str, p50: float, created: str) -> dict[str, Any]:
    doc = _report(p50, created)
    doc["bundle"]["source"] = {"kind": "onnx", "ref": f"/models/{model}.onnx",
                               "sha256": (model[0] * 64)}
    return doc


def test_two_models_on_one_board_keep_their_own_history(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from edgeship.cli import app
    from profiler.history import history_rows, models, regression_line

    record(_model_report("alpha", 1.0, "2026-01-01T00:00:00"), tmp_path, 10.0)
    path, _ = record(_model_report("beta", 50.0, "2026-01-02T00:00:00"), tmp_path, 10.0)
    beta = json.loads(path.read_text())
    assert beta["regression"]["checked"] is False  # not "+4900 %" against alpha
    assert beta["regression"]["reason"] == ("first run of this model (beta.onnx (bbbbbbbbbbbb)) "
                                            "on this board")
    assert "first run of this model" in regression_line(beta)
    path, _ = record(_model_report("alpha", 1.05, "2026-01-03T00:00:00"), tmp_path, 10.0)
    alpha = json.loads(path.read_text())
    reg = alpha["regression"]
    assert reg["checked"] and reg["previous_bundle"] == "b1.0" and reg["regressed"] == []
    assert reg["artifacts"]["onnx-fp32"]["change_pct"] == pytest.approx(5.0)
    assert "the previous run of alpha.onnx (aaaaaaaaaaaa)" in regression_line(alpha)
    assert [r["p50_ms"] for r in history_rows(tmp_path, alpha)] == [1.0, 1.05]  # the plot's
    assert [(m["name"], m["deploys"]) for m in models(tmp_path, "sim")] == [
        ("alpha.onnx (aaaaaaaaaaaa)", 2), ("beta.onnx (bbbbbbbbbbbb)", 1)]
    assert [r["p50_ms"] for r in trend(tmp_path, "sim", model="bbbb")["rows"]] == [50.0]
    with pytest.raises(ConfigError, match="no saved reports of model 'cccc'.*alpha.onnx"):
        trend(tmp_path, "sim", model="cccc")

    monkeypatch.setenv("EDGESHIP_REPORTS", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    res = CliRunner().invoke(app, ["history", "--device", "sim"])
    assert res.exit_code == 0, res.output
    assert "models on sim" in res.output and "beta.onnx (bbbbbbbbbbbb)" in res.output
    res = CliRunner().invoke(app, ["history", "--device", "sim", "--model", "beta", "--json"])
    doc = json.loads(res.output)
    assert [m["name"] for m in doc["models"]] == ["beta.onnx (bbbbbbbbbbbb)"]
    assert doc["deploys"] == 1
