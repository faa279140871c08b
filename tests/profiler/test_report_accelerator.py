"""Report: each row says where the artifact ran; an accelerator asked for but unused fails or
warns, by the profile's ``runtime.accelerator``."""

from __future__ import annotations

from typing import Any

import pytest

from profiler.report import build_report, render_markdown, render_table
from profiles import Budgets


def _manifest() -> dict[str, Any]:
    art = {"key": "onnx-fp16", "format": "onnx", "precision": "fp16", "file": "model.fp16.onnx",
           "size_bytes": 1000, "sha256": "0" * 64, "verification": {"accuracy_drop": 0.0}}
    return {"bundle_id": "abc", "profile": {"name": "jetson-orin-nano"}, "source": {},
            "artifacts": [art]}


def _agent(accel: dict[str, Any]) -> dict[str, Any]:
    result = {"key": "onnx-fp16", "ok": True, "runtime": "onnxruntime", "runtime_version": "1.31.1",
              "load_ms": 1.0, "first_inference_ms": 1.0, "warmup": 1, "runs": 3,
              "latency_ms": {"p50": 1.0, "p99": 2.0}, "rss_mb": {"peak": 50.0},
              "accelerator": accel}
    return {"device": {}, "results": [result]}


CPU_RUN = {"requested": "TensorRT", "device": "CPU", "ok": False,
           "executed_by": "onnxruntime 1.31.1 CPUExecutionProvider (CPU)",
           "reason": "TensorRT not installed on the board (import tensorrt: No module named "
                     "'tensorrt'); onnxruntime 1.31.1 offers only CPUExecutionProvider (a CPU "
                     "build)"}


def _report(accel: dict[str, Any]) -> dict[str, Any]:
    return build_report(device="jet", board={}, manifest=_manifest(), bundle_reused=False,
                        ship={}, agent=_agent(accel), budgets=Budgets())


def test_required_accelerator_on_the_cpu_fails_with_the_reason() -> None:
    rep = _report({**CPU_RUN, "policy": "required"})
    row = rep["artifacts"][0]
    assert rep["verdict"] == "fail" and row["verdict"] == "fail"
    assert row["ran_on"] == "onnxruntime 1.31.1 CPUExecutionProvider (CPU)"
    check = row["budgets"]["accelerator"]
    assert check["ok"] is False and check["value"] == "CPU"
    assert check["reason"].startswith("accelerator requested, ran on CPU: TensorRT not installed")
    assert "accelerator requested, ran on CPU" in render_markdown(rep)
    assert render_table(rep).columns[9].header == "ran on"


def test_preferred_accelerator_passes_with_a_warning() -> None:
    rep = _report({**CPU_RUN, "policy": "preferred"})
    row = rep["artifacts"][0]
    assert rep["verdict"] == "pass" and "accelerator" not in row["budgets"]
    assert row["warnings"][0].startswith("accelerator requested, ran on CPU")


@pytest.mark.parametrize("accel", [
    {"requested": "TensorRT", "device": "GPU", "ok": True, "policy": "required",
     "executed_by": "TensorRT 10.3.0 on Orin (GPU)"},
    {"requested": None, "device": "CPU", "ok": True, "policy": "none",
     "executed_by": "onnxruntime 1.31.1 CPUExecutionProvider (CPU)"},
])
def test_gpu_runs_and_cpu_profiles_pass(accel: dict[str, Any]) -> None:
    rep = _report(accel)
    assert rep["verdict"] == "pass" and rep["artifacts"][0]["ran_on"] == accel["executed_by"]
