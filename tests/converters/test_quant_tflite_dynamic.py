"""The TFLite dynamic-range remedy for a CNN whose activations change range from call to call.

A bias-free conv net (ReLU, average pool, linear: ``f(a·x) = a·f(x)``) fed inputs whose loudness
spans six decades, as quiet and loud audio chunks do: one calibrated activation scale — 8 or 16
bits — reads the quiet calls as zeros, so full-integer int8 and 16x8 both flip their class;
dynamic-range int8 quantizes each call with its own range and keeps it. Before, the dynamic
remedy was tried for MatMul-heavy models only, and this model got fp16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.paths import Paths

CLASSES = 10


def _quiet_and_loud(tmp: Path, n: int = 160) -> tuple[Path, Path]:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    # conv weights of >= 1024 values: TFLite's dynamic range leaves smaller tensors in float
    w1 = nh.from_array(rng.normal(0, 0.3, (32, 6, 3, 3)).astype(np.float32), "w1")
    w2 = nh.from_array(rng.normal(0, 0.1, (32, 32, 3, 3)).astype(np.float32), "w2")
    fc = nh.from_array(rng.normal(0, 0.3, (32, CLASSES)).astype(np.float32), "fc")
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
             h.make_node("Flatten", ["p"], ["f"], name="flat"),
             h.make_node("MatMul", ["f", "fc"], ["logits"], name="head")]
    graph = h.make_graph(nodes, "quiet", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                   [1, 6, 10, 10])],
                         [h.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
                         [w1, w2, fc])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp / "quiet.onnx"
    onnx.save(model, str(path))
    loudness = 10.0 ** rng.uniform(-6, 0, (n, 1, 1, 1))
    x = (rng.normal(0, 1, (n, 6, 10, 10)) * loudness).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(n)]).argmax(1)
    np.savez(tmp / "quiet.npz", x=x, labels=labels, **{"calibration.x": x[:80]})
    return path, tmp / "quiet.npz"


def test_tflite_dynamic_range_rescues_activations_whose_range_changes_per_call(
        tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from converters import build_bundle
    from profiles.schema import Profile

    model, data = _quiet_and_loud(tmp_path)
    profile = Profile.model_validate({"name": "t", "arch": "aarch64",
                                      "budgets": {"max_accuracy_drop": 0.05},
                                      "artifacts": [{"format": "tflite", "precision": "int8"}]})
    bundle = build_bundle(str(model), profile, data, Paths(home=tmp_path / "home"),
                          progress=lambda s: None)
    m = bundle.manifest
    assert [a["key"] for a in m["artifacts"]] == ["tflite-int8"], m["left_out"]
    int8 = m["artifacts"][0]
    fallback = int8["fallback"]
    assert fallback["taken"] == "dynamic" and fallback["tried"] == ["int16-activations", "dynamic"]
    figures = {f["remedy"]: f for f in fallback["figures"]}
    assert figures["as configured"]["passed"] is False  # full-integer: quiet calls read as 0
    assert figures["int16-activations"]["passed"] is False  # 16 bits do not span six decades
    assert "host_p50_ms" in figures["dynamic"]  # timed against fp32 by the speed guard
    assert int8["converter"]["variant"] == "dynamic_range_quant"
    assert int8["precision"] == "int8" and "requested" not in int8
    weights = {np.dtype(t["dtype"]).name for t in
               Interpreter(str(bundle.path / int8["file"])).get_tensor_details()
               if len(t["shape"]) == 4 and t["shape"][0] == 32}
    assert "int8" in weights  # the conv weights are int8 in the file
