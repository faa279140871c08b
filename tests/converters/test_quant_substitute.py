"""int8 that cannot be made: weights inside If subgraphs, and the substitute ladder.

The models are built with ``onnx.helper``: ``branchy`` computes ``MatMul(x, W)`` inside both
branches of an ``If`` (its weights are ``Constant`` nodes there, as exporters write them: the
static quantizers skip subgraphs); ``expy`` is ``Exp(x)`` alone (nothing onnxruntime can quantize).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.int8_options import OnnxQuantOptions
from converters.quantize_onnx import SUBGRAPHS, OnnxQuantizer
from core.errors import ConversionError
from core.paths import Paths

DIN, DOUT = 16, 8


def _branchy(path: Path) -> Path:
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)

    def branch(name: str, scale: float) -> object:
        w = nh.from_array((rng.normal(0, 0.5, (DIN, DOUT)) * scale).astype(np.float32), "w")
        nodes = [h.make_node("Constant", [], [f"{name}_w"], value=w),
                 h.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"], name=f"{name}_fc")]
        return h.make_graph(nodes, name, [], [h.make_tensor_value_info(
            f"{name}_y", TensorProto.FLOAT, [1, DOUT])])

    nodes = [h.make_node("ReduceMax", ["x"], ["m"], keepdims=0, name="max"),
             h.make_node("Greater", ["m", "zero"], ["cond"], name="positive"),
             h.make_node("If", ["cond"], ["logits"], name="choose",
                         then_branch=branch("then", 1.0), else_branch=branch("else", 2.0))]
    graph = h.make_graph(nodes, "branchy",
                         [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, DIN])],
                         [h.make_tensor_value_info("logits", TensorProto.FLOAT, [1, DOUT])],
                         [nh.from_array(np.array(0.0, np.float32), "zero")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _settingy(path: Path, on_data_too: bool = False) -> Path:
    """``MatMul(x, W_then)`` when the scalar int64 input ``rate`` is 16000, else
    ``MatMul(x, W_else)``: Silero VAD's shape (its network is an ``If`` on the sample rate).
    *on_data_too*: the condition also needs ``max(x) > 0`` (no value of ``rate`` decides it)."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(2)

    def branch(name: str) -> object:
        w = nh.from_array(rng.normal(0, 0.5, (DIN, DOUT)).astype(np.float32), "w")
        nodes = [h.make_node("Constant", [], [f"{name}_w"], value=w),
                 h.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"], name=f"{name}_fc")]
        return h.make_graph(nodes, name, [], [h.make_tensor_value_info(
            f"{name}_y", TensorProto.FLOAT, [1, DOUT])])

    nodes = [h.make_node("Equal", ["rate", "k16"], ["cond" if not on_data_too else "is16k"],
                         name="is16k")]
    if on_data_too:
        nodes += [h.make_node("ReduceMax", ["x"], ["m"], keepdims=0, name="max"),
                  h.make_node("Greater", ["m", "zero"], ["positive"], name="positive"),
                  h.make_node("And", ["is16k", "positive"], ["cond"], name="both")]
    nodes.append(h.make_node("If", ["cond"], ["logits"], name="choose",
                             then_branch=branch("then"), else_branch=branch("else")))
    graph = h.make_graph(nodes, "settingy",
                         [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, DIN]),
                          h.make_tensor_value_info("rate", TensorProto.INT64, [])],
                         [h.make_tensor_value_info("logits", TensorProto.FLOAT, [1, DOUT])],
                         [nh.from_array(np.array(16000, np.int64), "k16"),
                          nh.from_array(np.array(0.0, np.float32), "zero")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _expy(path: Path) -> Path:
    import onnx
    from onnx import TensorProto
    from onnx import helper as h

    graph = h.make_graph([h.make_node("Exp", ["x"], ["y"], name="exp")], "expy",
                         [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, DIN])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, DIN])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _x(n: int = 64) -> np.ndarray:
    return np.random.default_rng(1).normal(0, 1, (n, DIN)).astype(np.float32)


def _all_ops(path: Path) -> set[str]:
    import onnx

    from converters.quantize_subgraphs import all_op_types

    return all_op_types(onnx.load(str(path)).graph)


def test_weights_inside_if_subgraphs_are_quantized(tmp_path: Path) -> None:
    import onnxruntime as ort

    src, x = _branchy(tmp_path / "branchy.onnx"), _x()
    quantizer = OnnxQuantizer(src, {"x": x}, tmp_path)
    assert quantizer.subgraph_weights == 2
    info = quantizer.quantize(OnnxQuantOptions(), tmp_path / "q.onnx")
    assert info["variant"] == SUBGRAPHS and info["options"]["subgraphs"] is True
    # the static variants are not tried: they could only put Q/DQ on the outputs (Silero VAD's
    # "int8" was its float network with an int8-rounded state output)
    assert [t["variant"] for t in info["tried"]] == ["as configured"]
    assert "reaches none of the model's 2 weight nodes" in info["tried"][0]["error"]
    assert "MatMulInteger" in _all_ops(tmp_path / "q.onnx")
    for remedy in ({"op_types": ("MatMul",)}, {"activations": "int16"}, {"exclude": ("x",)}):
        with pytest.raises(ConversionError, match="the one int8 it allows is dynamic"):
            quantizer.quantize(OnnxQuantOptions(**remedy), tmp_path / "r.onnx")
    with pytest.raises(ConversionError, match=r"no zero-point-0 Q/DQ activations \(TensorRT"):
        quantizer.quantize(OnnxQuantOptions(symmetric=True), tmp_path / "t.onnx")
    f = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    q = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    for row in (x[:1], -np.abs(x[1:2])):  # both branches
        want, got = f.run(None, {"x": row})[0], q.run(None, {"x": row})[0]
        assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_a_setting_the_data_holds_takes_its_branch_for_static_int8(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Silero VAD: the data holds ``sr`` at 16000, so the int8 artifact takes that branch and
    gets static Q/DQ int8 (TensorRT's zero-point-0 kind too) instead of dynamic int8 inside the
    ``If``; it no longer takes ``rate`` and says so (``fixed_inputs``). Data that holds the
    setting at two values keeps the branches (dynamic int8 inside them)."""
    import onnxruntime as ort

    src, x = _settingy(tmp_path / "settingy.onnx"), _x()
    rate = np.full(len(x), 16000, np.int64)
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    quantizer = OnnxQuantizer(src, {"x": x, "rate": rate}, tmp_path / "one")
    assert quantizer.fixed_inputs == {"rate": 16000}
    for options in (OnnxQuantOptions(), OnnxQuantOptions(symmetric=True)):
        out = tmp_path / f"q{options.symmetric}.onnx"
        info = quantizer.quantize(options, out)
        assert info["variant"] == "as configured" and info["method"].startswith(
            "quantize_static QDQ")
        assert info["fixed_inputs"] == {"rate": 16000}
        assert [s["step"] for s in info["cleanup"]] == ["constant inputs", "onnxslim"]
        ops = _all_ops(out)
        assert "If" not in ops and {"QuantizeLinear", "DequantizeLinear"} <= ops
        f = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
        q = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert [i.name for i in q.get_inputs()] == ["x"]
        want = f.run(None, {"x": x[:1], "rate": np.array(16000, np.int64)})[0]
        other = f.run(None, {"x": x[:1], "rate": np.array(8000, np.int64)})[0]
        got = q.run(None, {"x": x[:1]})[0]
        assert np.abs(got - want).max() < 0.05 * np.abs(want).max() < np.abs(got - other).max()
    # another quantizer of the same model (a remedy's) takes the branch from memory
    children = []
    monkeypatch.setattr("converters.branch_fold._run_child", lambda *a: children.append(a))
    (tmp_path / "again").mkdir()
    again = OnnxQuantizer(src, {"x": x, "rate": np.full(len(x), 16000, np.int64)},
                          tmp_path / "again")
    assert again.fixed_inputs == {"rate": 16000} and not children
    assert again.quantize(OnnxQuantOptions(), tmp_path / "again.onnx")["fixed_inputs"]
    rate[::2] = 8000
    both = OnnxQuantizer(src, {"x": x, "rate": rate}, tmp_path / "two")
    assert both.fixed_inputs == {}
    assert both.quantize(OnnxQuantOptions(), tmp_path / "d.onnx")["variant"] == SUBGRAPHS


def test_a_branch_the_setting_alone_does_not_decide_stays_and_says_why(tmp_path: Path) -> None:
    """The ``If`` also tests the data: fixing ``rate`` takes no branch, so the model keeps its
    input and its branches (dynamic int8 inside them), and the clean-up step says why."""
    src = _settingy(tmp_path / "mixed.onnx", on_data_too=True)
    x = _x()
    quantizer = OnnxQuantizer(src, {"x": x, "rate": np.full(len(x), 16000, np.int64)}, tmp_path)
    assert quantizer.fixed_inputs == {}
    info = quantizer.quantize(OnnxQuantOptions(), tmp_path / "q.onnx")
    assert info["variant"] == SUBGRAPHS and "fixed_inputs" not in info
    step = next(s for s in info["cleanup"] if s["step"] == "constant inputs")
    assert not step["changed"] and "kept 1 If node(s)" in step["error"]
    assert "\n" not in step["error"]


def test_nothing_quantizable_says_so_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="no node was quantized") as err:
        OnnxQuantizer(_expy(tmp_path / "e.onnx"), {"x": _x()}, tmp_path).quantize(
            OnnxQuantOptions(), tmp_path / "q.onnx")
    assert err.value.stage == "quantize" and "\n" not in str(err.value)


def _profile(**quantization: object) -> object:
    from profiles.schema import Profile

    int8: dict = {"format": "onnx", "precision": "int8"}
    if quantization:
        int8["quantization"] = quantization
    return Profile.model_validate({"name": "t", "arch": "x86_64", "artifacts": [int8]})


def _bundle(tmp: Path, profile: object) -> tuple[object, list[str]]:
    from converters import build_bundle

    np.savez(tmp / "d.npz", x=_x(32))
    steps: list[str] = []
    bundle = build_bundle(str(_expy(tmp / "e.onnx")), profile, tmp / "d.npz",
                          Paths(home=tmp / "home"), progress=steps.append)
    return bundle, steps


def test_int8_that_cannot_be_made_is_substituted_by_fp16(tmp_path: Path) -> None:
    """The profile's only artifact cannot be quantized: before, 'no artifact survived'; now the
    int8 remedies are tried and fp16 ships under its own name."""
    bundle, steps = _bundle(tmp_path, _profile())
    m = bundle.manifest
    [fp16] = m["artifacts"]
    assert fp16["key"] == "onnx-fp16" and fp16["requested"] == "onnx-int8"
    assert fp16["file"] == "model.fp16.onnx" and fp16["verification"]["passed"]
    assert fp16["fallback"]["taken"] == "fp16" and fp16["fallback"]["tried"][-1] == "fp16"
    assert fp16["fallback"]["figures"][0]["remedy"] == "as configured"
    assert "no node was quantized" in fp16["fallback"]["figures"][0]["error"]
    [out] = m["left_out"]
    assert out["key"] == "onnx-int8" and out["stage"] == "quantize"
    assert out["delivered_instead"] == "onnx-fp16" and "\n" not in out["cause"]
    assert "no node was quantized" in out["cause"]
    assert out["tried"][:3] == ["as configured", "per-tensor", "QOperator"]
    assert out["tried"][-2:] == ["int16-activations", "fp16"]  # int8 remedies before fp16
    assert any("could not be made" in s for s in steps)


def test_fp16_substitute_can_be_forbidden(tmp_path: Path) -> None:
    from core.errors import ConversionError as Error

    with pytest.raises(Error, match="no artifact survived: onnx-int8 \\(quantize") as err:
        _bundle(tmp_path, _profile(fallback_fp16=False))
    msg = str(err.value)
    assert "no node was quantized" in msg
    assert "fallbacks calibration-percentile, weight-ops-only, int16-activations failed too" in msg
    assert "fp16" not in msg.split("[tried")[1] and "\n" not in msg


def test_tflite_fp16_is_not_tried_when_the_float_conversion_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32 and fp16 TFLite come from one float conversion: when it failed, the int8's fp16
    substitute would fail the same way after minutes of onnx2tf; it is skipped, and said so."""
    import converters.pipeline as build
    from profiles.schema import Profile

    def make(onnx_path, out_dir, precisions, *args, **kwargs):
        return {p: ConversionError(f"TFLite export failed ({p}): onnx2tf: simulated")
                for p in precisions}

    monkeypatch.setattr(build, "make_tflite", make)
    profile = Profile.model_validate({"name": "t", "arch": "x86_64", "artifacts": [
        {"format": "onnx", "precision": "fp32"}, {"format": "tflite", "precision": "int8"},
        {"format": "tflite", "precision": "fp32"}]})
    bundle, _ = _bundle(tmp_path, profile)
    m = bundle.manifest
    assert [a["key"] for a in m["artifacts"]] == ["onnx-fp32"]
    int8 = next(lo for lo in m["left_out"] if lo["key"] == "tflite-int8")
    assert int8["stage"] == "convert" and int8["tried"] == ["onnx2tf"]
    assert int8["cause"].endswith("fp16 not tried: tflite-fp32 failed at convert and fp16 "
                                  "comes from the same float conversion")
