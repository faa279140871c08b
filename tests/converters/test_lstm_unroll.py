"""LSTM nodes unrolled into basic ops (for onnx2tf), and slices trimmed to the axes they cut:
onnxruntime's own LSTM is the reference; a small stateful model (silero-vad's decoder shape:
batch 1, one step, state fed as ``[2, 1, H]``) then converts to a TFLite file that matches it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.lstm_unroll import unroll_lstms


def _lstm_model(seq: int, batch: int, hidden: int = 8, size: int = 5, *, unsqueezed: bool = False,
                bias: bool = True):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seq * 10 + batch)
    w = rng.standard_normal((1, 4 * hidden, size)).astype(np.float32) * 0.5
    r = rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32) * 0.5
    b = rng.standard_normal((1, 8 * hidden)).astype(np.float32) * 0.5
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"),
             numpy_helper.from_array(np.array([0], np.int64), "zero")]
    nodes, x = [], "x"
    if unsqueezed:  # x: [batch, size] → [1, batch, size], as torch exports one step
        nodes.append(helper.make_node("Unsqueeze", ["x", "zero"], ["x3"]))
        x = "x3"
    if bias:
        inits.append(numpy_helper.from_array(b, "B"))
    nodes.append(helper.make_node("LSTM", [x, "W", "R", "B" if bias else "", "", "h0", "c0"],
                                  ["y", "yh", "yc"], hidden_size=hidden))
    x_shape = [batch, size] if unsqueezed else [seq, batch, size]
    graph = helper.make_graph(nodes, "g", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
        helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, batch, hidden]),
        helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, batch, hidden])], [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [seq, 1, batch, hidden]),
        helper.make_tensor_value_info("yh", TensorProto.FLOAT, [1, batch, hidden]),
        helper.make_tensor_value_info("yc", TensorProto.FLOAT, [1, batch, hidden])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model, feed):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString()).run(None, feed)


@pytest.mark.parametrize(("seq", "batch", "unsqueezed", "bias"),
                         [(1, 1, False, True), (3, 2, False, True), (1, 1, True, True),
                          (4, 1, False, False)])
def test_unrolled_lstm_is_onnxruntimes_lstm(seq: int, batch: int, unsqueezed: bool,
                                            bias: bool) -> None:
    import onnx

    model = _lstm_model(seq, batch, unsqueezed=unsqueezed, bias=bias)
    rng = np.random.default_rng(7)
    x_shape = [batch, 5] if unsqueezed else [seq, batch, 5]
    feed = {"x": rng.standard_normal(x_shape).astype(np.float32),
            "h0": rng.standard_normal((1, batch, 8)).astype(np.float32),
            "c0": rng.standard_normal((1, batch, 8)).astype(np.float32)}
    want = _run(model, feed)
    assert unroll_lstms(model) == 1
    onnx.checker.check_model(model)
    assert "LSTM" not in {n.op_type for n in model.graph.node}
    for got, ref in zip(_run(model, feed), want):
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_lstm_it_cannot_keep_exact_is_left_alone() -> None:
    from onnx import helper

    model = _lstm_model(2, 1)
    model.graph.node[-1].attribute.append(helper.make_attribute("clip", 3.0))
    assert unroll_lstms(model) == 0
    assert "LSTM" in {n.op_type for n in model.graph.node}


def test_trimmed_slices_cut_the_same_values(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from converters.onnx_cleanup import clean_onnx

    big = np.iinfo(np.int64).max
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (
        ("starts", [0, 129, 0]), ("ends", [big, big, big]), ("axes", [0, 1, 2]),
        ("steps", [1, 1, 1]))]
    graph = helper.make_graph(
        [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"], name="s")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 258, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 129, 3])], inits)
    src = tmp_path / "s.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), str(src))
    result = clean_onnx(src, tmp_path / "c.onnx", slim=False, unroll_lstm=True)
    assert {"step": "slices", "tool": "edgeship", "trimmed": 1, "changed": True} in result.steps
    cleaned = onnx.load(str(tmp_path / "c.onnx"))
    consts = {i.name: numpy_helper.to_array(i) for i in cleaned.graph.initializer}
    assert [consts[n].tolist() for n in cleaned.graph.node[0].input[1:]] == [[129], [big], [1], [1]]
    x = np.random.default_rng(0).standard_normal((1, 258, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(cleaned, {"x": x})[0], x[:, 129:])


def test_stateful_lstm_converts_to_tflite_that_matches(tmp_path: Path) -> None:
    """One step, batch 1, state in and out: onnx2tf's Keras LSTM refused its initial state;
    unrolled, the TFLite file matches onnxruntime."""
    import onnx

    from converters._runners import TfliteRunner
    from converters.export_tflite import export_tflite
    from converters.verify import Reference

    model = _lstm_model(1, 1, unsqueezed=True)
    src = tmp_path / "lstm.onnx"
    onnx.save(model, str(src))
    rng = np.random.default_rng(1)
    calib = {"x": rng.standard_normal((8, 1, 5)).astype(np.float32),
             "h0": rng.standard_normal((8, 1, 1, 8)).astype(np.float32),
             "c0": rng.standard_normal((8, 1, 1, 8)).astype(np.float32)}
    info = export_tflite(src, tmp_path, ["fp32"], {k: v[:, 0] for k, v in calib.items()})
    assert "lstm" in info["fp32"]["route"]
    feed = {k: v[0] for k, v in calib.items()}
    want = _run(model, feed)
    ref = Reference.of(want, ["y", "yh", "yc"], feed=feed)
    runner = TfliteRunner(tmp_path / "model.fp32.tflite",
                          {"x": (1, 5), "h0": (1, 1, 8), "c0": (1, 1, 8)}, 1, ref.source())
    for g, w in zip(runner.run(feed), want):  # matched to the source's outputs, source layout
        np.testing.assert_allclose(g, w, atol=1e-5)
