"""ONNX clean-up before conversion (onnxslim, opset upgrade, safe names) and reading onnx2tf's
log for its real cause; no converter runs here (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from route_models import conv_pool

from converters._onnx2tf_log import cause
from converters.onnx_cleanup import clean_onnx, default_opset, safe_name


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]


def test_names_are_made_safe_and_io_kept(tmp_path: Path) -> None:
    src = conv_pool(tmp_path / "at.onnx", suffix="@0")
    result = clean_onnx(src, tmp_path / "clean.onnx", slim=False, sanitize_names=True)
    model = onnx.load(str(result.path))
    assert [n.name for n in model.graph.node] == ["conv_0", "pool_0", "flat_0", "head_0",
                                                  "Softmax_0"]
    assert all(safe_name(t) == t for n in model.graph.node for t in (*n.input, *n.output))
    assert result.io_renamed == {} and result.route() == ["names"]
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(_run(result.path, x), _run(src, x))


def test_renamed_names_stay_unique(tmp_path: Path) -> None:
    from onnx import TensorProto
    from onnx import helper as h

    nodes = [h.make_node("Relu", ["x"], ["a@1"], name="n@1"),
             h.make_node("Relu", ["a@1"], ["a_1"], name="n_1"),
             h.make_node("Neg", ["a_1"], ["y@"], name="out")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                         [h.make_tensor_value_info("y@", TensorProto.FLOAT, [1, 2])])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), tmp_path / "m.onnx")
    result = clean_onnx(tmp_path / "m.onnx", tmp_path / "c.onnx", slim=False,
                        sanitize_names=True)
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model)
    assert len({n.name for n in model.graph.node}) == 3
    assert result.io_renamed == {"y@": "y_"}


def test_opset_upgrade_and_slim_are_recorded(tmp_path: Path) -> None:
    src = conv_pool(tmp_path / "m11.onnx", opset=11)
    result = clean_onnx(src, tmp_path / "c.onnx", min_opset=13)
    assert default_opset(onnx.load(str(result.path))) >= 13 and result.opset >= 13
    steps = {s["step"]: s for s in result.steps}
    assert steps["opset"]["from"] == 11 and steps["opset"]["to"] == 13
    assert steps["onnxslim"]["version"] and "error" not in steps["onnxslim"]
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(_run(result.path, x), _run(src, x), atol=1e-6)


def test_onnxslim_folds_constants(tmp_path: Path) -> None:
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    c = nh.from_array(np.full((1, 2), 2.0, np.float32), "c")
    nodes = [h.make_node("Mul", ["c", "c"], ["c2"], name="fold_me"),
             h.make_node("Add", ["x", "c2"], ["y"], name="add")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [c])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8  # onnxslim folds with onnxruntime, which loads IR ≤ 13
    onnx.save(model, tmp_path / "m.onnx")
    result = clean_onnx(tmp_path / "m.onnx", tmp_path / "c.onnx")
    slim = result.steps[0]
    assert slim["nodes_before"] == 2 and slim["nodes_after"] == 1 and slim["changed"]


LOG = """
Model conversion started ============================================================
\x1b[31mERROR:\x1b[0m The trace log is below.
Traceback (most recent call last):
  File "onnx2tf/ops/Mul.py", line 319, in make_node
ValueError: Exception encountered when calling layer "tf.math.multiply_1" (type TFOpLambda).
\x1b[31mERROR:\x1b[0m input_onnx_file_path: /tmp/x/model.onnx
\x1b[31mERROR:\x1b[0m onnx_op_name: p2o.Mul.178
\x1b[31mERROR:\x1b[0m Read this and deal with it. https://github.com/PINTO0309/onnx2tf#parameter-replacement
\x1b[31mERROR:\x1b[0m Alternatively, if the input OP has a dynamic dimension, use the -b or -ois option.
\x1b[31mERROR:\x1b[0m Also, for models that include NonMaxSuppression in the post-processing, try the -onwdt option.
"""


def test_cause_is_the_tensorflow_message_at_the_onnx_node() -> None:
    exc = ValueError('Exception encountered when calling layer "tf.math.multiply_1" (type '
                     "TFOpLambda).\n\nDimensions must be equal, but are 4800 and 120 for "
                     "'{{node tf.math.multiply_1/Mul}}'.\n\nCall arguments received by layer "
                     '"tf.math.multiply_1" (type TFOpLambda):\n  • x=tf.Tensor(shape=(1, 4800))')
    assert cause(LOG, exc) == ("Dimensions must be equal, but are 4800 and 120 for "
                               "'{{node tf.math.multiply_1/Mul}}'. (ONNX node p2o.Mul.178)")


def test_cause_prefers_onnx2tf_own_error_line() -> None:
    log = "\x1b[31mERROR:\x1b[0m CumProd OP is not yet implemented.\n"
    assert cause(log, ModuleNotFoundError("No module named 'onnx2tf.ops.CumProd'")) == (
        "CumProd OP is not yet implemented.")
    assert "exit status 1" in cause("nothing useful\n", SystemExit(1))


def test_cause_of_a_failed_int8_file_is_the_converters_error_before_it() -> None:
    """onnx2tf prints TensorFlow's traceback as a warning, then "Full INT8 Quantization tflite
    output failed." (all silero-vad-op15's int8 cause said); the error line is the cause."""
    log = ("\x1b[33mWARNING:\x1b[0m some earlier warning\n"
           "Traceback (most recent call last):\n"
           '  File "calibrator.py", line 143, in _feed_tensors\n'
           "    self._calibrator.Prepare([list(s.shape) for s in input_array])\n"
           "RuntimeError: tensorflow/lite/kernels/reshape.cc:94 num_input_elements != "
           "num_output_elements (256 != 128)Node number 25 (RESHAPE) failed to prepare.\n"
           "\n\x1b[33mWARNING:\x1b[0m Full INT8 Quantization tflite output failed.\n")
    assert cause(log, None) == (
        "Full INT8 Quantization tflite output failed: RuntimeError: tensorflow/lite/kernels/"
        "reshape.cc:94 num_input_elements != num_output_elements (256 != 128)Node number 25 "
        "(RESHAPE) failed to prepare.")
    plain = "\x1b[33mWARNING:\x1b[0m Full INT8 Quantization tflite output failed.\n"
    assert cause(plain, None) == "Full INT8 Quantization tflite output failed."
