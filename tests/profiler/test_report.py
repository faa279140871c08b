"""Report: budgets judged per artifact, verdicts, saved JSON, console table."""

import json
from pathlib import Path

from profiler.report import build_report, judge, render_table, save_report
from profiles import Budgets


def _manifest() -> dict:
    def art(key: str, size: int, drop: float) -> dict:
        fmt, prec = key.split("-")
        return {"key": key, "format": fmt, "precision": prec, "file": f"model.{prec}.{fmt}",
                "size_bytes": size, "sha256": "0" * 64,
                "verification": {"accuracy": 0.95 - drop, "accuracy_drop": drop,
                                 "top1_agreement": 0.99, "max_abs_drift": 0.1, "passed": True}}
    return {"bundle_id": "abc123", "profile": {"name": "sim"}, "source": {"kind": "pt2"},
            "artifacts": [art("onnx-fp32", 120_000, 0.0), art("onnx-int8", 40_000, 0.004)]}


def _measured(key: str, p99: float, peak: float) -> dict:
    return {"key": key, "ok": True, "runtime": "onnxruntime", "runtime_version": "1.31.1",
            "load_ms": 3.0, "first_inference_ms": 1.0, "warmup": 5, "runs": 50,
            "latency_ms": {"min": 0.1, "mean": 0.2, "p50": 0.2, "p90": 0.3, "p99": p99, "max": p99},
            "rss_mb": {"before_load": 30, "after_load": 40, "peak": peak}}


def test_judge_only_set_budgets() -> None:
    row = {"size_bytes": 2_000_000, "accuracy_drop": 0.02, "latency_ms": {"p99": 5.0}, "peak_rss_mb": 50}
    checks = judge(row, Budgets(max_size_mb=1, max_accuracy_drop=0.01))
    assert set(checks) == {"max_size_mb", "max_accuracy_drop"}
    assert not checks["max_size_mb"]["ok"] and not checks["max_accuracy_drop"]["ok"]


def test_verdicts_pass_fail_error(tmp_path: Path) -> None:
    budgets = Budgets(p99_ms=1.0, peak_rss_mb=100)
    agent = {"device": {"machine": "x86_64"}, "results": [_measured("onnx-fp32", 0.5, 60),
                                                          _measured("onnx-int8", 3.0, 60)]}
    rep = build_report(device="sim", board={"name": "sim"}, manifest=_manifest(),
                       bundle_reused=True, ship={"reused": True}, agent=agent, budgets=budgets)
    verdicts = {a["key"]: a["verdict"] for a in rep["artifacts"]}
    assert verdicts == {"onnx-fp32": "pass", "onnx-int8": "fail"}
    assert rep["verdict"] == "fail"
    assert rep["artifacts"][1]["budgets"]["p99_ms"] == {"limit": 1.0, "value": 3.0, "ok": False}

    agent["results"][1] = {"key": "onnx-int8", "ok": False, "error": "segfault"}
    rep = build_report(device="sim", board={}, manifest=_manifest(), bundle_reused=False,
                       ship={}, agent=agent, budgets=budgets)
    assert rep["verdict"] == "error" and rep["artifacts"][1]["error"] == "segfault"

    path = save_report(rep, tmp_path)
    assert json.loads(path.read_text())["bundle"]["id"] == "abc123"
    assert path.parent.parent == tmp_path / "sim"
    assert save_report(rep, tmp_path) != path  # same second: a new folder, nothing overwritten
    assert render_table(rep).row_count == 2


def test_left_out_artifacts_make_the_verdict_partial_below_fail_and_error() -> None:
    from profiler.report import render_markdown

    manifest = _manifest()
    manifest["left_out"] = [{"key": "tflite-int8", "stage": "convert", "tool": "onnx2tf",
                             "cause": "TFLite export failed: 'Softmax@0' is not a valid scope name",
                             "tried": ["onnx2tf"], "required": False, "delivered_instead": None}]
    agent = {"results": [_measured("onnx-fp32", 0.5, 60), _measured("onnx-int8", 0.6, 60)]}

    def verdict(budgets: Budgets, results: list) -> dict:
        return build_report(device="sim", board={}, manifest=manifest, bundle_reused=False,
                            ship={}, agent={"results": results}, budgets=budgets)

    rep = verdict(Budgets(p99_ms=1.0), agent["results"])
    assert rep["verdict"] == "partial" and rep["left_out"] == manifest["left_out"]
    assert render_table(rep).row_count == 3
    from rich.console import Console

    console = Console(width=300, record=True)
    console.print(render_table(rep))
    assert "is not a valid scope name [tried onnx2tf]" in console.export_text()  # not markup
    assert ("| tflite-int8 | — | — | — | — | — | — | left out: convert (onnx2tf): TFLite export "
            "failed: 'Softmax@0' is not a valid scope name [tried onnx2tf] |") in render_markdown(rep)
    assert verdict(Budgets(p99_ms=0.55), agent["results"])["verdict"] == "fail"
    broken = [agent["results"][0], {"key": "onnx-int8", "ok": False, "error": "segfault"}]
    assert verdict(Budgets(), broken)["verdict"] == "error"
    assert build_report(device="sim", board={}, manifest=_manifest(), bundle_reused=False,
                        ship={}, agent=agent, budgets=Budgets())["verdict"] == "pass"
