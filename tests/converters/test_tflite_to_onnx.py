"""TFLite → ONNX (tf2onnx): MediaPipe's transpose-convolution custom op lowered to standard ONNX
ops with TensorFlow's padding, and tf2onnx's own one-line cause kept when it fails.

The whole route (a .tflite source built into ONNX and TFLite artifacts) is in
``test_conv_isolation``; the corpus's MediaPipe models run it on real files (``make zoo``).
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.tflite_to_onnx import _cause, lower_custom_ops


def _custom_node_model(x_shape, weight):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("TFL_Convolution2DTransposeBias", ["x", "w", "b"], ["y"], name="y")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "h", "w", "c"])],
        [numpy_helper.from_array(weight, "w"),
         numpy_helper.from_array(np.array([0.25] * weight.shape[0], np.float32), "b")])
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize(("kernel", "stride", "padding"),
                         [(2, 2, "SAME"), (3, 2, "SAME"), (4, 2, "SAME"), (3, 1, "SAME"),
                          (3, 2, "VALID")])
def test_transpose_conv_bias_lowered_like_tensorflow(kernel: int, stride: int,
                                                     padding: str) -> None:
    import onnx
    import onnxruntime as ort
    import tensorflow as tf

    rng = np.random.default_rng(kernel * 10 + stride)
    x = rng.standard_normal((1, 7, 9, 5)).astype(np.float32)
    ohwi = rng.standard_normal((3, kernel, kernel, 5)).astype(np.float32)  # TFLite's layout
    model = _custom_node_model(x.shape, ohwi)
    assert lower_custom_ops(model, lambda: {"y": (padding, stride, stride)}) == [
        "Convolution2DTransposeBias"]
    onnx.checker.check_model(model)
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    out_hw = [(d * stride if padding == "SAME" else (d - 1) * stride + kernel) for d in (7, 9)]
    want = tf.nn.conv2d_transpose(x, ohwi.transpose(1, 2, 0, 3), [1, *out_hw, 3],
                                  strides=stride, padding=padding).numpy() + 0.25
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_cause_is_the_tools_own_line() -> None:
    stderr = ("2026-12-02 03:13:08,129 - INFO - Using tensorflow=2.21.0\n"
              "Traceback (most recent call last):\n  File \"x.py\", line 3, in <module>\n"
              "    raise ValueError(...)\n"
              "ValueError: tflite op SOMETHING is not supported\n")
    assert _cause(stderr) == "ValueError: tflite op SOMETHING is not supported"
    logged = ("2026-12-02 03:13:08,129 - INFO - Using opset <onnx, 17>\n"
              "2026-12-02 03:13:09,001 - ERROR - Unsupported ops: Counter({'FancyOp': 1})\n")
    assert _cause(logged) == "Unsupported ops: Counter({'FancyOp': 1})"
