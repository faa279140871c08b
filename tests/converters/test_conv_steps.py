"""converters.steps: the converter's steps timed, nested, and recorded in the manifest."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from converters import build_bundle
from converters.steps import Timings, record, recording, timed
from core.paths import Paths
from profiles import Artifact, load_profile


def test_steps_nest_in_start_order_and_survive_errors() -> None:
    with recording() as clock:
        with timed("verify", "onnx-int8"):
            record("calibrate", 0.25)
            with pytest.raises(RuntimeError), timed("fallback fp16", "onnx-int8"):
                time.sleep(0.01)
                raise RuntimeError("remedy failed")
        with timed("write"):
            pass
    steps = clock.to_dict()["steps"]
    assert [(s["step"], s["key"], s["within"]) for s in steps] == [
        ("verify", "onnx-int8", None), ("calibrate", None, "verify onnx-int8"),
        ("fallback fp16", "onnx-int8", "verify onnx-int8"), ("write", None, None)]
    assert steps[1]["seconds"] == 0.25 and steps[2]["seconds"] >= 0.01
    assert steps[0]["seconds"] >= steps[2]["seconds"]  # the parent holds its children
    assert clock.to_dict()["total_s"] >= steps[0]["seconds"] + steps[3]["seconds"]


def test_outside_a_recording_nothing_is_kept() -> None:
    with timed("export", "onnx-fp32"):
        record("calibrate", 1.0)
    with recording() as clock:
        pass
    assert clock.steps == []


def test_decorated_function_is_timed_each_call() -> None:
    @timed("convert", "onnx-fp16")
    def convert() -> str:
        return "done"

    with recording() as clock:
        assert convert() == "done" and convert() == "done"
    assert [s.label() for s in clock.steps] == ["convert onnx-fp16", "convert onnx-fp16"]


def test_summary_names_the_slowest_top_level_steps() -> None:
    clock = Timings()
    clock.add("verify", 31.2, "tflite-int8")
    clock.add("export", 7.0, "onnx-fp32")
    assert clock.summary(top=1) == "verify tflite-int8 31.2 s"


def _top(steps: list[dict]) -> dict[str, float]:
    return {f"{s['step']} {s['key']}" if s["key"] else s["step"]: s["seconds"]
            for s in steps if s["within"] is None}


def test_onnx_bundle_records_each_step(tiny, tmp_path: Path) -> None:
    sim = load_profile("sim")
    profile = sim.model_copy(update={"artifacts": (Artifact(format="onnx", precision="fp32"),
                                                   Artifact(format="onnx", precision="int8"))})
    start = time.perf_counter()
    bundle = build_bundle(str(tiny.pt2), profile, tiny.data, Paths(home=tmp_path))
    wall = time.perf_counter() - start
    timings = bundle.manifest["timings"]
    steps = timings["steps"]
    top = _top(steps)
    assert {"load", "reference", "export onnx-fp32", "quantize onnx-int8",
            "load-check onnx-fp32", "load-check onnx-int8", "verify onnx-fp32",
            "verify onnx-int8"} <= set(top)
    assert all(s["seconds"] >= 0 for s in steps) and top["export onnx-fp32"] > 0
    assert sum(top.values()) <= timings["total_s"] <= wall
    nested = {(s["step"], s["within"]) for s in steps if s["within"]}
    # 100 calibration samples, or the ranges an earlier build of this model in this process
    # calibrated (converters._calib_memo): either way the step is there
    assert {("calibrate", "quantize onnx-int8"),
            ("calibrate (ranges reused)", "quantize onnx-int8")} & nested
    assert ("host latency", "verify onnx-int8") in nested
    again = build_bundle(str(tiny.pt2), profile, tiny.data, Paths(home=tmp_path))
    assert again.reused and again.manifest["timings"] == timings  # the build's, kept


def test_tflite_conversion_records_each_onnx2tf_call(sim_bundle) -> None:
    bundle, _ = sim_bundle
    steps = bundle.manifest["timings"]["steps"]
    convert = next(s for s in steps if s["step"] == "convert" and "tflite-int8" in s["key"])
    calls = [s for s in steps if s["within"] == f"convert {convert['key']}"]
    assert {s["step"] for s in calls} == {"onnx cleanup", "onnx2tf float call",
                                          "onnx2tf int8 call"}
    assert sum(s["seconds"] for s in calls) <= convert["seconds"]


def test_host_timing_stops_at_its_budget_with_enough_runs() -> None:
    from converters.verify import HOST_MIN_RUNS, host_latency

    slow = host_latency(lambda: time.sleep(0.01), runs=100, warmup=0, budget_s=0.05)
    assert slow["runs"] == HOST_MIN_RUNS and slow["p50"] >= 10
    fast = host_latency(lambda: None, runs=100, warmup=0, budget_s=0.05)
    assert fast["runs"] == 100
