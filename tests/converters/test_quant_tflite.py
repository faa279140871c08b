"""TFLite int8 variants through onnx2tf (real converter, real interpreter) on a tiny seeded conv.

Two converter runs for the whole module (each ~10 s: tensorflow's import dominates): one makes
fp16 + full-integer int8 with uint8 I/O, the other dynamic-range int8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _conv_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    w = nh.from_array(rng.normal(0, 0.3, (8, 1, 3, 3)).astype(np.float32), "w")
    fc = nh.from_array(rng.normal(0, 0.1, (8 * 8 * 8, 10)).astype(np.float32), "fc")
    shape = nh.from_array(np.array([1, 8 * 8 * 8], np.int64), "shape")
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["r"], name="relu"),
             h.make_node("Reshape", ["r", "shape"], ["f"], name="flat"),
             h.make_node("MatMul", ["f", "fc"], ["logits"], name="head")]
    graph = h.make_graph(nodes, "conv", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                  [1, 1, 8, 8])],
                         [h.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
                         [w, fc, shape])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture(scope="session")
def tflite_variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Paths and converter infos of fp16, int8 (uint8 I/O) and dynamic-range int8 files."""
    from converters.export_tflite import export_tflite
    from profiles.schema import Quantization

    tmp = tmp_path_factory.mktemp("tflite")
    _conv_onnx(tmp / "conv.onnx")
    calib = {"x": np.random.default_rng(1).normal(0, 1, (32, 1, 8, 8)).astype(np.float32)}
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    infos = export_tflite(tmp / "conv.onnx", tmp / "a", ["fp16", "int8"], calib,
                          Quantization(io="uint8"))
    dynamic = export_tflite(tmp / "conv.onnx", tmp / "b", ["int8"], calib,
                            Quantization(mode="dynamic"))
    return {"fp16": tmp / "a" / "model.fp16.tflite", "uint8": tmp / "a" / "model.int8.tflite",
            "dynamic": tmp / "b" / "model.int8.tflite", "uint8_info": infos["int8"],
            "dynamic_info": dynamic["int8"]}


def _tensors(path: object) -> tuple[list[dict], list[str], list[str]]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    io = [np.dtype(d["dtype"]).name for d in interp.get_input_details()]
    out = [np.dtype(d["dtype"]).name for d in interp.get_output_details()]
    return interp.get_tensor_details(), io, out


def test_dynamic_range_has_int8_weights_and_float_io(tflite_variants: dict) -> None:
    details, inputs, outputs = _tensors(tflite_variants["dynamic"])
    assert inputs == ["float32"] and outputs == ["float32"]
    assert any(np.dtype(d["dtype"]) == np.int8 and np.prod(d["shape"]) >= 72 for d in details)
    assert tflite_variants["dynamic_info"]["variant"] == "dynamic_range_quant"
    assert tflite_variants["dynamic_info"]["options"]["mode"] == "dynamic"


def test_fp16_has_fp16_weights(tflite_variants: dict) -> None:
    details, inputs, _ = _tensors(tflite_variants["fp16"])
    assert inputs == ["float32"]
    assert any(np.dtype(d["dtype"]) == np.float16 for d in details)
    assert not any(np.dtype(d["dtype"]) == np.int8 for d in details)


def test_full_integer_with_uint8_io(tflite_variants: dict) -> None:
    from converters._runners import TfliteRunner

    _, inputs, outputs = _tensors(tflite_variants["uint8"])
    assert inputs == ["uint8"] and outputs == ["uint8"]
    assert tflite_variants["uint8_info"]["io"] == "uint8"
    runner = TfliteRunner(tflite_variants["uint8"], {"x": (1, 1, 8, 8)}, 1)
    out = runner.run({"x": np.ones((1, 1, 8, 8), np.float32)})[0]
    assert out.dtype == np.float32 and out.shape == (1, 10) and np.abs(out).sum() > 0
