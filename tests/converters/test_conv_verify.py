"""converters.verify: figures, the gate, and a deliberately broken artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters._runners import open_runner
from converters.verify import check_verifications, collect_outputs, compare
from core.errors import VerificationError


def test_identical_outputs_pass() -> None:
    ref = [np.eye(4, dtype=np.float32)]
    v = compare(ref, ref, np.arange(4), max_drop=0.0)
    assert (v.accuracy, v.accuracy_drop, v.top1_agreement, v.max_abs_drift, v.cosine) == (
        1.0, 0.0, 1.0, 0.0, 1.0)
    assert v.passed


def test_accuracy_drop_over_budget_fails() -> None:
    ref = [np.eye(4, dtype=np.float32)]
    outs = [np.roll(np.eye(4, dtype=np.float32), 1, axis=1)]
    outs[0][:3] = np.eye(4, dtype=np.float32)[:3]  # one of four predictions changes
    v = compare(outs, ref, np.arange(4), max_drop=0.1)
    assert v.accuracy_drop == 0.25 and not v.passed
    assert v.reason == ("output 'output_0' (classes): accuracy drop 0.25 > 0.1 "
                        "(budgets.max_accuracy_drop) [kind from its values; set "
                        "fidelity.outputs.output_0 to change it]")


def test_without_labels_gate_is_drift() -> None:
    ref = [np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
    v = compare([ref[0] * 1.01], ref, None, max_drop=0.0)
    assert v.accuracy is None and v.passed and "drift only" in v.reason
    flipped = compare([ref[0][:, ::-1].copy()], ref, None, max_drop=0.0)
    assert not flipped.passed and flipped.top1_agreement == 0.0


def test_corrupted_weights_fail_the_gate(sim_bundle, tiny, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    bundle, _ = sim_bundle
    model = onnx.load(str(bundle.path / "model.fp32.onnx"))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.ndim == 2:  # the linear head: shuffle its rows, predictions become garbage
            init.CopyFrom(numpy_helper.from_array(arr[::-1].copy(), init.name))
    broken = tmp_path / "model.fp32.onnx"
    onnx.save(model, str(broken))
    data = np.load(tiny.data)
    inputs = {"input": data["image"]}
    good = open_runner("onnx", bundle.path / "model.fp32.onnx", {"input": (1, 1, 28, 28)}, 1)
    ref = collect_outputs(good.run, inputs)
    bad = open_runner("onnx", broken, {"input": (1, 1, 28, 28)}, 1)
    result = compare(collect_outputs(bad.run, inputs), ref, data["labels"], max_drop=0.01)
    assert not result.passed and result.accuracy_drop > 0.3
    with pytest.raises(VerificationError, match=r"verification failed for onnx-fp32 \(onnx-fp32: "
                                                r"output 'output_0' \(classes\): accuracy drop "
                                                r"0\.\d+ > 0\.01 \(budgets\.max_accuracy_drop\) "
                                                r"\[kind from its shape; set fidelity\.outputs\."
                                                r"output_0 to change it\]\)"):
        check_verifications({"onnx-fp32": result}, 0.01)


def test_manifest_figures_are_consistent(sim_bundle, tiny) -> None:
    bundle, _ = sim_bundle
    ref_acc = bundle.manifest["reference"]["accuracy"]
    assert ref_acc == pytest.approx(tiny.accuracy, abs=1e-6)
    for art in bundle.manifest["artifacts"]:
        v = art["verification"]
        assert v["samples"] == 300 and v["passed"]
        assert v["accuracy_drop"] == pytest.approx(ref_acc - v["accuracy"], abs=1e-6)
        assert art["host_latency_ms"]["p50"] > 0
