"""Erf (BERT's exact GELU) has no TFLite builtin: onnx2tf wrote a Flex op that the standard
interpreter refuses ("Select TensorFlow op(s) … not supported"), so all-MiniLM's TFLite could not
be loaded. The TFLite route now has onnx2tf write its polynomial erf, a builtin-only file."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _gelu_model(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w")
    consts = [numpy_helper.from_array(np.array(v, np.float32), n)
              for n, v in (("sqrt2", 1.4142135), ("one", 1.0), ("half", 0.5))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Div", ["h", "sqrt2"], ["hs"]),
             helper.make_node("Erf", ["hs"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["h", "e1"], ["g"]),
             helper.make_node("Mul", ["g", "half"], ["y"])]
    graph = helper.make_graph(nodes, "gelu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
                              [w, *consts])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), str(path))


def test_erf_becomes_builtin_ops_that_load_and_match(tmp_path: Path) -> None:
    import onnxruntime as ort

    from converters._runners import TfliteRunner
    from converters.export_tflite import export_tflite

    src = tmp_path / "gelu.onnx"
    _gelu_model(src)
    x = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32) * 2
    info = export_tflite(src, tmp_path, ["fp32"], {"x": x})
    assert "erf" in info["fp32"]["route"]
    step = next(s for s in info["fp32"]["cleanup"] if s["step"] == "erf")
    assert step["replaced"] == {"Erf": 1}
    runner = TfliteRunner(tmp_path / "model.fp32.tflite", {"x": (1, 8)}, 1)  # no Flex: loads
    want = ort.InferenceSession(str(src)).run(None, {"x": x[:1]})[0]
    np.testing.assert_allclose(runner.run({"x": x[:1]})[0], want, atol=1e-5)
