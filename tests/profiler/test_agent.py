"""The on-board agent, run on the simulated board through measure_release."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rt_kit import sha256_file

from core.errors import MeasurementError
from devices import Board
from profiler import AGENT_PATH, AGENT_VERSION, measure_release
from profiler.measure import DEVICE_FIELDS, LATENCY_FIELDS, RESULT_FIELDS
from profiles import Profile, load_profile
from runtimes import SSHTransport, ship_bundle

NewBundle = Callable[..., Path]


def _profile(**profiling: object) -> Profile:
    base = load_profile("sim")
    opts = {"warmup": 5, "runs": 50, **profiling}
    return base.model_copy(update={"profiling": base.profiling.model_copy(update=opts)})


def test_agent_is_python38_syntax_and_versioned() -> None:
    source = AGENT_PATH.read_text()
    ast.parse(source, feature_version=(3, 8))
    assert re.search(rf'^AGENT_VERSION = "{re.escape(AGENT_VERSION)}"$', source, re.M)
    assert not re.search(r"\.removeprefix\(|\.removesuffix\(|^\s*match |:=", source, re.M)


@pytest.mark.ssh
def test_agent_measures_onnx_and_tflite(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle()
    ship_bundle(transport, board, bundle)
    doc = measure_release(transport, board, _profile())
    assert (
        doc["schema"] == 2
        and doc["agent_version"] == AGENT_VERSION
        and doc["release"] == bundle.name
    )
    device = doc["device"]
    assert set(DEVICE_FIELDS) <= set(device)
    assert device["machine"] == "x86_64" and device["python"] == "3.11.2" and device["cores"] >= 1
    assert device["ram_mb"] > 0 and "Debian" in device["os"] and isinstance(device["temps_c"], dict)
    by_key = {r["key"]: r for r in doc["results"]}
    assert sorted(by_key) == ["onnx-fp32", "tflite-fp32", "tflite-int8"]
    for result in by_key.values():
        assert set(RESULT_FIELDS) <= set(result) and result["ok"] and result["error"] is None
        lat = result["latency_ms"]
        assert set(LATENCY_FIELDS) <= set(lat)
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert (result["warmup"], result["runs"], result["threads"]) == (5, 50, 1)
        assert (
            result["load_ms"] > 0
            and result["first_inference_ms"] > 0
            and result["throughput_ips"] > 0
        )
        rss = result["rss_mb"]
        assert 0 < rss["before_load"] <= rss["after_load"] <= rss["peak"]
        assert [(o["shape"], o["finite"]) for o in result["outputs"]] == [([1, 8], True)]
    assert by_key["onnx-fp32"]["runtime"] == "onnxruntime"
    assert by_key["onnx-fp32"]["runtime_version"] == "1.31.1"
    assert by_key["onnx-fp32"]["providers"] == ["CPUExecutionProvider"]
    assert by_key["tflite-int8"]["runtime"] == "ai_edge_litert"


@pytest.mark.ssh
def test_a_broken_artifact_fails_alone(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle(
        keys=("onnx-fp32", "tflite-fp32"), extra={"model.fp32.onnx": b"\x08garbage"}
    )
    ship_bundle(transport, board, bundle)
    doc = measure_release(transport, board, _profile(), release_id=bundle.name)
    onnx, tflite = doc["results"]
    assert onnx["key"] == "onnx-fp32" and onnx["ok"] is False and onnx["error"]
    assert onnx["latency_ms"] is None
    assert tflite["ok"] is True and tflite["latency_ms"]["p50"] > 0


@pytest.mark.ssh
def test_a_child_past_its_timeout_is_reported_not_awaited(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle(keys=("onnx-fp32",))
    ship_bundle(transport, board, bundle)
    res = transport.run(
        [
            board.python,
            f"{board.root}/current/edgeship_agent.py",
            "--release",
            f"{board.root}/current",
            "--timeout",
            "0.05",
        ]
    )
    assert '"timed out after 0.05 s"' in res.stdout and '"ok": false' in res.stdout


@pytest.mark.ssh
def test_a_hung_agent_becomes_a_measurement_error(
    transport: SSHTransport, board: Board, new_bundle: NewBundle, tmp_path: Path
) -> None:
    hanging = tmp_path / "hang.py"
    hanging.write_text("import time\ntime.sleep(600)\n")
    bundle = new_bundle(keys=("onnx-fp32",), agent=hanging)
    ship_bundle(transport, board, bundle)
    started = time.monotonic()
    with pytest.raises(MeasurementError, match=r"agent on board 'sim' did not finish within 2 s"):
        measure_release(transport, board, _profile(timeout_s=2))
    assert time.monotonic() - started < 20  # not the agent's 600 s (slack for a busy host)
    agent = f"{board.root}/current/edgeship_agent.py"
    assert agent not in transport.run(["ps", "-eo", "args"]).stdout  # killed on the board too


@pytest.mark.ssh
def test_garbage_from_the_agent_is_a_measurement_error(
    transport: SSHTransport, board: Board, new_bundle: NewBundle, tmp_path: Path
) -> None:
    chatty = tmp_path / "chatty.py"
    chatty.write_text("print('Segmentation fault? no: just chatter')\n")
    bundle = new_bundle(keys=("onnx-fp32",), agent=chatty)
    ship_bundle(transport, board, bundle)
    with pytest.raises(MeasurementError, match=r"invalid result \(not JSON\).*just chatter"):
        measure_release(transport, board, _profile())


def _vad_bundle(dest: Path) -> Path:
    """A release of a VAD-like ONNX model (``onnx.helper``): ``image [1,1,4,4]`` (batch-first),
    recurrent ``state [2,1,8]`` and a scalar int64 ``sr []`` (both fed whole, ``batch_axis``
    null), with samples.npz in the data layout, first axis = samples."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(value, name)

    nodes = [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "w"], ["enc"]),
             helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["srf", "rate"], ["scale"]),
             helper.make_node("Mul", ["enc", "scale"], ["scaled"]),
             helper.make_node("Gather", ["state", "zero"], ["s0"], axis=0),
             helper.make_node("Add", ["scaled", "s0"], ["pre"]),
             helper.make_node("Tanh", ["pre"], ["h"]),
             helper.make_node("Unsqueeze", ["h", "axis0"], ["hu"]),
             helper.make_node("Concat", ["hu", "hu"], ["state_out"], axis=0),
             helper.make_node("ReduceSum", ["h", "axis1"], ["sum"], keepdims=1),
             helper.make_node("Sigmoid", ["sum"], ["prob"])]
    inits = [const("w", np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)),
             const("rate", np.array(16000.0, np.float32)), const("zero", np.array(0, np.int64)),
             const("axis0", np.array([0], np.int64)), const("axis1", np.array([1], np.int64))]
    graph = helper.make_graph(nodes, "vad", [
        helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 4, 4]),
        helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, 1, 8]),
        helper.make_tensor_value_info("sr", TensorProto.INT64, [])], [
        helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1]),
        helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [2, 1, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    bundle = dest / "b00000000000vad01"
    bundle.mkdir(parents=True)
    onnx.save(model, str(bundle / "model.fp32.onnx"))
    rng = np.random.default_rng(1)
    np.savez(bundle / "samples.npz", image=rng.random((4, 1, 4, 4), dtype=np.float32),
             state=rng.random((4, 2, 1, 8), dtype=np.float32), sr=np.full(4, 16000, np.int64))
    shutil.copy(AGENT_PATH, bundle / "edgeship_agent.py")
    specs = [("image", [1, 1, 4, 4], "float32", 0), ("state", [2, 1, 8], "float32", None),
             ("sr", [], "int64", None)]
    artifact = {"key": "onnx-fp32", "format": "onnx", "precision": "fp32",
                "file": "model.fp32.onnx", "inputs": [
                    {"name": n, "shape": s, "dtype": d, "source_name": n, "transpose": None,
                     "batch_axis": axis} for n, s, d, axis in specs],
                "outputs": [{"name": "prob", "shape": [1, 1], "dtype": "float32"},
                            {"name": "state_out", "shape": [2, 1, 8], "dtype": "float32"}]}
    files = {p.name: {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
             for p in sorted(bundle.iterdir())}
    (bundle / "manifest.json").write_text(json.dumps(
        {"schema": 1, "bundle_id": bundle.name, "created": "2026-01-01T00:00:00Z",
         "files": files, "artifacts": [artifact]}))
    return bundle


def test_agent_feeds_state_and_scalar_inputs_as_declared(tmp_path: Path) -> None:
    """The agent on this host (no board): state and scalar fed whole, batch refused with why."""
    bundle = _vad_bundle(tmp_path)
    proc = subprocess.run([sys.executable, str(bundle / "edgeship_agent.py"), "--release",
                           str(bundle), "--runs", "5", "--warmup", "1", "--batch", "2",
                           "--op-top", "0"], capture_output=True, text=True, timeout=120,
                          check=False)
    (result,) = json.loads(proc.stdout)["results"]
    assert result["ok"], result["error"]
    assert result["batch"] == 1 and "no batch axis in input state, sr" in result["batch_note"]


@pytest.mark.ssh
def test_agent_on_the_board_runs_a_stateful_model(
    transport: SSHTransport, board: Board, tmp_path: Path
) -> None:
    bundle = _vad_bundle(tmp_path)
    ship_bundle(transport, board, bundle)
    doc = measure_release(transport, board, _profile())
    (result,) = doc["results"]
    assert result["ok"], result["error"]
    assert result["runs"] == 50 and result["latency_ms"]["p50"] > 0
