"""ONNX int8 modes, per-layer sensitivity and the gate's fallbacks, on tiny seeded MLPs.

The models are built with ``onnx.helper`` (no torch export, so each build takes a second):
``weight`` has one huge weight on a dead unit (per-tensor int8 weights collapse, per-channel is
fine); ``activation`` has one hidden unit with a huge activation (per-channel weights do not help,
keeping the two layers around it in float does). Labels are the float model's own predictions.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from converters.int8_options import OnnxQuantOptions
from converters.quantize_onnx import OnnxQuantizer
from core.errors import ConversionError, VerificationError
from core.paths import Paths

DIN, HID, CLASSES = 16, 32, 10


def _mlp(kind: str, seed: int = 0) -> object:
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (DIN, HID)).astype(np.float32)
    b1 = np.zeros(HID, np.float32)
    w2 = rng.normal(0, 0.5, (HID, HID)).astype(np.float32)
    w3 = rng.normal(0, 0.5, (HID, CLASSES)).astype(np.float32)
    if kind == "weight":  # a dead unit (0 after the ReLU) carrying a huge weight into fc2
        b1[5], w2[5, 0] = -100.0, 500.0
    elif kind == "activation":  # one hidden unit at 2000, barely used by fc2
        b1[0] = 2000.0
        w2[0, :] *= 1e-4
    inits = [nh.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (w3, "w3")]]
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
             h.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
             h.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             h.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
             h.make_node("Relu", ["m2"], ["r2"], name="relu2"),
             h.make_node("MatMul", ["r2", "w3"], ["logits"], name="fc3")]
    if kind == "tail":  # a constant -5000 logit for a class never chosen, concatenated after
        inits[3] = nh.from_array(w3[:, :-1].copy(), "w3")  # the last MatMul
        inits.append(nh.from_array(np.full((1, 1), -5000.0, np.float32), "never"))
        nodes[-1].output[0] = "l3"
        nodes.append(h.make_node("Concat", ["l3", "never"], ["logits"], name="join", axis=1))
    graph = h.make_graph(nodes, kind, [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, DIN])],
                         [h.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
                         inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _saved(path: Path, nodes: list, inits: list, x_shape: list[int]) -> Path:
    """A graph ``x`` → ``logits [1, CLASSES]`` of *nodes* at opset 17, saved to *path*."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h

    graph = h.make_graph(nodes, path.stem, [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     x_shape)],
                         [h.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
                         inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _write(tmp: Path, kind: str, n: int = 300) -> tuple[Path, Path, np.ndarray]:
    import onnx
    import onnxruntime as ort

    model = _mlp(kind)
    path = tmp / f"{kind}.onnx"
    onnx.save(model, str(path))
    x = np.random.default_rng(1).normal(0, 1, (n, DIN)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(n)]).argmax(1)
    np.savez(tmp / f"{kind}.npz", x=x, labels=y, **{"calibration.x": x[:100]})
    return path, tmp / f"{kind}.npz", x


@pytest.fixture(scope="session")
def mlps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, np.ndarray]]:
    """``kind`` → (model.onnx, data.npz, inputs) for the plain, weight and activation MLPs."""
    tmp = tmp_path_factory.mktemp("mlps")
    return {kind: _write(tmp, kind) for kind in ("plain", "weight", "activation", "tail")}


def _quantize(mlps: dict, kind: str, tmp: Path, **options: object) -> object:
    import onnx

    model, _, x = mlps[kind]
    out = tmp / "q.onnx"
    OnnxQuantizer(model, {"x": x[:100]}, tmp).quantize(OnnxQuantOptions(**options), out)
    return onnx.load(str(out))


def _ops(model: object) -> set[str]:
    return {n.op_type for n in model.graph.node}  # type: ignore[attr-defined]


def _weight_scales(model: object) -> list[np.ndarray]:
    """Scales of the DequantizeLinear nodes fed by an int8 initializer (the weights)."""
    from onnx import numpy_helper

    graph = model.graph  # type: ignore[attr-defined]
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return [inits[n.input[1]] for n in graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits
            and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim == 2]


def test_dynamic_mode_quantizes_activations_at_run_time(mlps: dict, tmp_path: Path) -> None:
    ops = _ops(_quantize(mlps, "plain", tmp_path, mode="dynamic", calibration="none"))
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    assert "QuantizeLinear" not in ops


@pytest.mark.parametrize("per_channel", [True, False])
def test_static_qdq_weights_per_channel_or_per_tensor(mlps: dict, tmp_path: Path,
                                                      per_channel: bool) -> None:
    model = _quantize(mlps, "plain", tmp_path, per_channel=per_channel)
    scales = _weight_scales(model)
    assert len(scales) == 3 and "QuantizeLinear" in _ops(model)
    assert all((s.size > 1) == per_channel for s in scales)
    axes = [a.i for n in model.graph.node if n.op_type == "DequantizeLinear"
            for a in n.attribute if a.name == "axis"]
    assert bool(axes) == per_channel


def test_calibration_method_reaches_the_quantizer(mlps: dict, tmp_path: Path) -> None:
    from onnx import numpy_helper

    def input_scale(sub: str, **options: object) -> float:
        (tmp_path / sub).mkdir()
        model = _quantize(mlps, "plain", tmp_path / sub, **options)
        consumer = {n.input[0]: n for n in model.graph.node if n.op_type == "QuantizeLinear"}["x"]
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        return float(inits[consumer.input[1]])

    minmax = input_scale("minmax")
    assert input_scale("p99", calibration="percentile", percentile=99.0) < 0.8 * minmax
    assert input_scale("entropy", calibration="entropy") > 0


def test_calibration_runs_as_many_samples_at_once_as_fit(mlps: dict, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime's calibrators hold every intermediate tensor of the samples they run at once
    (12.9 GB for the OCR text detector's 24 samples): they get as many as fit in
    CALIBRATION_BYTES, measured on the first sample, and min-max ranges do not change for it.
    Strides only when needed: histograms grow from the first stride's bin width (Silero's
    silent first chunks, in strides of 2, grew them past 18 GB)."""
    from onnx import numpy_helper

    from converters import _calib_memo, calibration_reader

    ranges: list[tuple[int, int]] = []
    set_range = calibration_reader.CalibrationReader.set_range

    def recorded(self: object, start_index: int, end_index: int) -> None:
        ranges.append((start_index, end_index))
        set_range(self, start_index, end_index)

    monkeypatch.setattr(calibration_reader.CalibrationReader, "set_range", recorded)

    def scales(sub: str) -> list[float]:
        (tmp_path / sub).mkdir()
        monkeypatch.setattr(_calib_memo, "_MEMO", type(_calib_memo._MEMO)())  # no shared ranges
        model = _quantize(mlps, "plain", tmp_path / sub)
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        return [float(inits[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"]

    whole = scales("whole")
    assert ranges == [(0, 100)]  # a small model: every sample at once
    model, _, x = mlps["plain"]
    per_sample = calibration_reader.activation_bytes(model, {"x": x[:1]})
    assert per_sample is not None and per_sample > 0
    monkeypatch.setattr(calibration_reader, "CALIBRATION_BYTES", per_sample * 4)
    ranges.clear()
    assert scales("strided") == whole
    assert ranges == [(i, i + 4) for i in range(0, 100, 4)]
    assert calibration_reader.calibration_stride(518, None) == 2  # unknown size: at most 4
    assert calibration_reader.calibration_stride(23, None) == 1


def test_histogram_calibration_keeps_stdout_clean(mlps: dict, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # onnxruntime's histogram calibrators print progress; under --json stdout is the document
    _quantize(mlps, "plain", tmp_path, calibration="percentile", percentile=99.0)
    assert capsys.readouterr().out == ""


def test_sensitivity_ranks_the_fragile_layer_first(mlps: dict, tmp_path: Path) -> None:
    from converters.sensitivity import measure_sensitivity

    model, _, x = mlps["weight"]
    quantizer = OnnxQuantizer(model, {"x": x[:100]}, tmp_path)
    ranking, bound = measure_sensitivity(quantizer, OnnxQuantOptions(per_channel=False),
                                         {"x": x})
    assert [r["node"] for r in ranking][0] == "fc2"
    assert ranking[0]["nmse"] > 100 * ranking[1]["nmse"]
    assert bound["nodes"] == bound["scanned"] == 3 and bound["stopped"] is None
    assert bound["samples_used"] == bound["samples"] < len(x)  # bounded, not all 300 samples


def test_sensitivity_scan_is_bounded_by_layers_and_time(mlps: dict, tmp_path: Path) -> None:
    from converters.sensitivity import ScanBound, measure_sensitivity

    model, _, x = mlps["weight"]
    quantizer = OnnxQuantizer(model, {"x": x[:100]}, tmp_path)
    options = OnnxQuantOptions(per_channel=False)
    ranking, bound = measure_sensitivity(quantizer, options, {"x": x}, bound=ScanBound(
        max_layers=2, samples=8))
    nodes = quantizer.weight_nodes()
    assert {r["node"] for r in ranking} == {nodes[0], nodes[-1]}  # first and last always kept
    assert bound["scanned"] == 2 and bound["nodes"] == 3 and bound["stopped"] == "max_layers"
    assert bound["samples_used"] == 8
    ranking, bound = measure_sensitivity(quantizer, options, {"x": x},
                                         bound=ScanBound(max_seconds=1e-6))
    assert ranking == [] and bound["stopped"] == "max_seconds" and bound["seconds"] < 30


def test_sensitivity_scan_skips_a_layer_the_quantizer_leaves_float_alone(tmp_path: Path) -> None:
    """Silero VAD's scan stopped at its first probe (an LSTM: onnxruntime's static quantizer
    does not quantize it, "no node was quantized"), so no keep-float-N remedy was tried at all.
    Such a node is listed as not quantized alone and the scan goes on."""
    from onnx import helper as h
    from onnx import numpy_helper as nh

    from converters.sensitivity import measure_sensitivity

    rng = np.random.default_rng(2)
    hid = 6
    inits = [nh.from_array(rng.normal(0, 0.3, (1, 4 * hid, DIN)).astype(np.float32), "W"),
             nh.from_array(rng.normal(0, 0.3, (1, 4 * hid, hid)).astype(np.float32), "R"),
             nh.from_array(rng.normal(0, 0.5, (hid, CLASSES)).astype(np.float32), "w"),
             nh.from_array(np.array([1, hid], np.int64), "flat")]
    nodes = [h.make_node("Transpose", ["x"], ["t"], name="time_first", perm=[1, 0, 2]),
             h.make_node("LSTM", ["t", "W", "R"], ["", "h"], name="rnn", hidden_size=hid),
             h.make_node("Reshape", ["h", "flat"], ["hf"], name="flatten"),
             h.make_node("MatMul", ["hf", "w"], ["logits"], name="head")]
    path = _saved(tmp_path / "rnn.onnx", nodes, inits, [1, 4, DIN])
    x = np.random.default_rng(1).normal(0, 1, (32, 4, DIN)).astype(np.float32)
    quantizer = OnnxQuantizer(path, {"x": x}, tmp_path)
    assert quantizer.weight_nodes() == ["rnn", "head"]
    ranking, bound = measure_sensitivity(quantizer, OnnxQuantOptions(), {"x": x})
    assert [r["node"] for r in ranking] == ["head"] and ranking[0]["nmse"] > 0
    assert bound["not_quantized_alone"] == ["rnn"] and bound["scanned"] == 1


def test_exclude_auto_keeps_the_worst_layers_in_float(mlps: dict, tmp_path: Path) -> None:
    import onnx

    from converters.fallback import make_onnx_int8
    from profiles.schema import Quantization

    model, _, x = mlps["activation"]
    steps: list[str] = []
    info = make_onnx_int8(model, tmp_path / "q.onnx", {"x": x[:100]},
                          Quantization(exclude="auto", keep_float=2), {"x": x}, 1, steps.append)
    kept = set(info["options"]["exclude"])
    assert len(kept) == 2 and "fc3" not in kept
    assert [r["node"] for r in info["sensitivity"]][2] == "fc3"
    assert info["sensitivity_bound"]["scanned"] == 3  # the bound is recorded with the artifact
    consumers = {n.name: n.input for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert "w3" not in consumers["fc3"]  # fc3 is quantized: it reads a dequantized weight
    assert any("sensitivity" in s for s in steps)


def _profile(quantization: dict | None, max_drop: float = 0.05, required: bool = False) -> object:
    from profiles.schema import Profile

    int8: dict = {"format": "onnx", "precision": "int8", **({"required": True} if required else {})}
    if quantization is not None:
        int8["quantization"] = quantization
    return Profile.model_validate({"name": "t", "arch": "x86_64",
                                   "budgets": {"max_accuracy_drop": max_drop},
                                   "artifacts": [{"format": "onnx", "precision": "fp32"}, int8]})


def _bundle(mlps: dict, kind: str, home: Path, quantization: dict | None,
            required: bool = False) -> tuple[object, list[str]]:
    from converters import build_bundle

    model, data, _ = mlps[kind]
    steps: list[str] = []
    bundle = build_bundle(str(model), _profile(quantization, required=required), data,
                          Paths(home=home), progress=steps.append)
    return bundle, steps


def _build(mlps: dict, kind: str, home: Path, quantization: dict | None) -> tuple[dict, list[str]]:
    bundle, steps = _bundle(mlps, kind, home, quantization)
    return next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-int8"), steps


def test_fallback_per_channel_rescues_a_per_tensor_collapse(mlps: dict, tmp_path: Path) -> None:
    entry, steps = _build(mlps, "weight", tmp_path, {"per_channel": False})
    fb = entry["fallback"]
    assert fb["tried"] == ["per-channel"] and fb["taken"] == "per-channel"
    assert fb["figures"][0]["remedy"] == "as configured" and not fb["figures"][0]["passed"]
    assert fb["figures"][0]["accuracy_drop"] > 0.3
    assert entry["verification"]["passed"] and entry["quantization"]["per_channel"] is True
    assert any("fallback per-channel passed" in s for s in steps)


def _spiked(tmp: Path, width: int = 1024) -> tuple[Path, Path]:
    """A wide input the model barely reads at one position, which one calibration sample
    spikes to 4000: min-max ranges fit the spike and crush every other input value; the
    99.999th percentile of the 100 x 1024 calibration values leaves it out."""
    import onnxruntime as ort
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(5)
    w1 = rng.normal(0, 0.1, (width, HID)).astype(np.float32)
    w1[0, :] *= 1e-4
    w2 = rng.normal(0, 0.5, (HID, CLASSES)).astype(np.float32)
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
             h.make_node("Relu", ["m1"], ["r1"], name="relu1"),
             h.make_node("MatMul", ["r1", "w2"], ["logits"], name="fc2")]
    path = _saved(tmp / "spiked.onnx", nodes, [nh.from_array(w1, "w1"), nh.from_array(w2, "w2")],
                  [1, width])
    x = rng.normal(0, 1, (300, width)).astype(np.float32)
    x[7, 0] = 4000.0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(300)]).argmax(1)
    np.savez(tmp / "spiked.npz", x=x, labels=labels, **{"calibration.x": x[:100]})
    return path, tmp / "spiked.npz"


def test_percentile_calibration_rescues_ranges_stretched_by_one_sample(tmp_path: Path) -> None:
    from converters import build_bundle

    model, data = _spiked(tmp_path)
    bundle = build_bundle(str(model), _profile(None), data, Paths(home=tmp_path),
                          progress=lambda s: None)
    entry = next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-int8")
    fb = entry["fallback"]
    assert fb["figures"][0]["remedy"] == "as configured" and not fb["figures"][0]["passed"]
    assert fb["tried"] == ["calibration-percentile"] and fb["taken"] == "calibration-percentile"
    assert entry["quantization"]["calibration"] == "percentile"
    assert entry["precision"] == "int8" and entry["verification"]["passed"]


def test_fallback_keeps_sensitive_layers_float_for_an_activation_outlier(
        mlps: dict, tmp_path: Path) -> None:
    entry, _ = _build(mlps, "activation", tmp_path, None)
    fb = entry["fallback"]
    assert fb["tried"] == ["calibration-percentile", "keep-float-1", "keep-float-2"]
    assert fb["taken"] == "keep-float-2"
    assert set(entry["quantization"]["exclude"]) == {"fc1/MatMulAddFusion", "fc2"}
    assert entry["precision"] == "int8" and entry["verification"]["passed"]


def test_no_fallback_leaves_int8_out_and_ships_fp32(mlps: dict, tmp_path: Path) -> None:
    bundle, steps = _bundle(mlps, "activation", tmp_path, {"fallback": False})
    m = bundle.manifest
    assert [a["key"] for a in m["artifacts"]] == ["onnx-fp32"]
    assert set(m["files"]) == {"model.fp32.onnx", "samples.npz"}
    [out] = m["left_out"]
    assert out["key"] == "onnx-int8" and out["stage"] == "verify" and out["tool"] == "onnxruntime"
    assert "accuracy drop" in out["cause"] and out["tried"] == [] and out["required"] is False
    assert any(s.startswith("left out onnx-int8 (verify, onnxruntime)") for s in steps)


def test_required_int8_failing_its_gate_is_one_line_and_fatal(mlps: dict, tmp_path: Path) -> None:
    with pytest.raises(VerificationError) as err:
        _bundle(mlps, "activation", tmp_path, {"fallback": False}, required=True)
    msg = str(err.value)
    assert msg.startswith("required artifact left out: onnx-int8 (verify, onnxruntime): ")
    assert "accuracy drop" in msg
    assert "\n" not in msg and "onnx-fp32" not in msg
    assert list((tmp_path / "bundles").iterdir()) == []


def _no_int16(job: object, tmp: Path, out: Path) -> dict:
    raise ConversionError("int16 activations withheld by the test")


def test_int16_activations_rescue_an_activation_outlier_as_int8(
        mlps: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("converters.fallback._keep_counts", lambda n: [1])
    bundle, _ = _bundle(mlps, "activation", tmp_path, None)
    m = bundle.manifest
    assert [a["key"] for a in m["artifacts"]] == ["onnx-fp32", "onnx-int8"] and not m["left_out"]
    int8 = m["artifacts"][1]
    assert int8["precision"] == "int8" and int8["converter"]["activations"] == "QInt16"
    assert int8["fallback"]["tried"] == ["calibration-percentile", "keep-float-1",
                                         "weight-ops-only", "int16-activations"]
    assert int8["fallback"]["taken"] == "int16-activations" and int8["verification"]["passed"]


def _no_dynamic(job: object, tmp: Path, out: Path) -> dict:
    raise ConversionError("dynamic int8 withheld by the test")


def test_dynamic_int8_rescues_a_matmul_model_whose_calibration_misleads(
        mlps: dict, tmp_path: Path) -> None:
    """Calibration samples 100x smaller than the real inputs: every static range clips (int16
    too), the dynamic quantizer measures each inference's range and passes as int8."""
    from converters import build_bundle

    model, data, x = mlps["plain"]
    labels = np.load(data)["labels"]
    np.savez(tmp_path / "d.npz", x=x, labels=labels, **{"calibration.x": x[:100] * 0.01})
    bundle = build_bundle(str(model), _profile(None), tmp_path / "d.npz",
                          Paths(home=tmp_path), progress=lambda s: None)
    int8 = bundle.manifest["artifacts"][1]
    assert int8["key"] == "onnx-int8" and int8["verification"]["passed"]
    assert int8["fallback"]["taken"] == "dynamic" and int8["fallback"]["tried"][-2:] == [
        "int16-activations", "dynamic"]
    assert int8["converter"]["method"].startswith("quantize_dynamic")
    assert int8["fallback"]["figures"][0]["accuracy_drop"] > 0.05  # static as configured


def test_fp16_fallback_is_named_fp16(mlps: dict, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("converters.fallback._keep_counts", lambda n: [1])  # int8 cannot pass
    monkeypatch.setattr("converters.fallback._int16_activations", _no_int16)
    monkeypatch.setattr("converters.fallback._dynamic_int8", _no_dynamic)
    bundle, _ = _bundle(mlps, "activation", tmp_path, None)
    m = bundle.manifest
    assert [a["key"] for a in m["artifacts"]] == ["onnx-fp32", "onnx-fp16"]
    fp16 = m["artifacts"][1]
    assert fp16["precision"] == "fp16" and fp16["file"] == "model.fp16.onnx"
    assert fp16["requested"] == "onnx-int8" and fp16["quantization"] is None
    assert fp16["fallback"]["tried"] == ["calibration-percentile", "keep-float-1",
                                         "weight-ops-only", "int16-activations",
                                         "dynamic", "keep-float-Gemm", "fp16"]
    assert fp16["fallback"]["taken"] == "fp16" and fp16["verification"]["passed"]
    assert "model.int8.onnx" not in m["files"] and "model.fp16.onnx" in m["files"]
    [out] = m["left_out"]
    assert out["key"] == "onnx-int8" and out["delivered_instead"] == "onnx-fp16"
    assert "accuracy drop" in out["cause"]
    assert out["tried"] == ["calibration-percentile", "keep-float-1", "weight-ops-only",
                            "int16-activations", "dynamic", "keep-float-Gemm", "fp16"]  # int8 first


def test_fallback_fp16_false_leaves_int8_out(mlps: dict, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("converters.fallback._keep_counts", lambda n: [1])
    monkeypatch.setattr("converters.fallback._int16_activations", _no_int16)
    monkeypatch.setattr("converters.fallback._dynamic_int8", _no_dynamic)
    bundle, _ = _bundle(mlps, "activation", tmp_path, {"fallback_fp16": False})
    m = bundle.manifest
    assert [a["key"] for a in m["artifacts"]] == ["onnx-fp32"]
    assert not any(name.startswith(("model.int8", "model.fp16")) for name in m["files"])
    [out] = m["left_out"]
    assert out["key"] == "onnx-int8" and out["delivered_instead"] is None
    assert out["tried"] == ["calibration-percentile", "keep-float-1", "weight-ops-only",
                            "int16-activations", "dynamic", "keep-float-Gemm"]
    assert ("fallbacks calibration-percentile, keep-float-1, weight-ops-only, int16-activations, "
            "dynamic, keep-float-Gemm failed" in out["cause"])


def test_a_remedy_refused_as_too_slow_is_not_said_to_have_failed(
        mlps: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """int16 activations pass the gate but the speed guard refuses them: the left-out int8's
    cause says so (not "failed"), and its manifest entry keeps every remedy's figures."""
    monkeypatch.setattr("converters.fallback._keep_counts", lambda n: [1])
    monkeypatch.setattr("converters.fallback._dynamic_int8", _no_dynamic)
    monkeypatch.setattr("converters.speed_guard._side_by_side", lambda one, two: (50.0, 1.0))
    bundle, _ = _bundle(mlps, "activation", tmp_path, {"fallback_fp16": False})
    [out] = bundle.manifest["left_out"]
    assert out["key"] == "onnx-int8" and "int16-activations" in out["tried"]
    assert ("fallbacks calibration-percentile, keep-float-1, weight-ops-only, dynamic, "
            "keep-float-Gemm failed too; int16-activations passed but ran 50.0x the fp32 "
            "model's host time (not taken)") in out["cause"]
    figures = {f["remedy"]: f for f in out["figures"]}
    assert figures["as configured"]["passed"] is False
    assert figures["int16-activations"]["passed"] is True
    assert figures["int16-activations"]["too_slow"] is True
    assert figures["dynamic"]["error"] == "dynamic int8 withheld by the test"


def test_unsupported_op_is_named(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto
    from onnx import helper as h

    node = h.make_node("FancyOp", ["x"], ["y"], name="fancy", domain="com.example")
    graph = h.make_graph([node], "g", [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17),
                                               h.make_opsetid("com.example", 1)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(ConversionError, match="FancyOp") as err:
        OnnxQuantizer(tmp_path / "m.onnx", {"x": x}, tmp_path).quantize(
            OnnxQuantOptions(), tmp_path / "q.onnx")
    assert "\n" not in str(err.value)


def _conv11(tmp: Path) -> tuple[Path, dict[str, np.ndarray]]:
    from route_models import conv_pool

    x = np.random.default_rng(1).normal(0, 1, (16, 3, 16, 16)).astype(np.float32)
    return conv_pool(tmp / "conv11.onnx", opset=11), {"x": x}


def _loads(path: Path) -> None:
    import onnxruntime as ort

    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_opset11_per_channel_int8_loads(tmp_path: Path) -> None:
    """Per-channel QDQ writes DequantizeLinear(axis=…) (opset ≥ 13): the model is upgraded."""
    src, calib = _conv11(tmp_path)
    info = OnnxQuantizer(src, calib, tmp_path).quantize(OnnxQuantOptions(), tmp_path / "q.onnx")
    _loads(tmp_path / "q.onnx")
    assert info["variant"] == "as configured" and info["options"]["per_channel"] is True
    assert info["cleanup"][0]["from"] == 11 and info["cleanup"][0]["to"] == 13


def test_int8_that_will_not_load_tries_the_next_variant(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the opset upgrade per-channel does not load; per-tensor does, and both tries
    are recorded with onnxruntime's own message."""
    import converters.quantize_onnx as qo

    monkeypatch.setattr(qo, "_upgrade", lambda fp32, out: (fp32, []))
    src, calib = _conv11(tmp_path)
    info = OnnxQuantizer(src, calib, tmp_path).quantize(OnnxQuantOptions(), tmp_path / "q.onnx")
    _loads(tmp_path / "q.onnx")
    assert info["variant"] == "per-tensor" and info["options"]["per_channel"] is False
    first = info["tried"][0]
    assert first["variant"] == "as configured" and first["stage"] == "load"
    assert "Unrecognized attribute: axis" in first["error"] and first["op_types"] == "Conv"


def test_no_variant_loads_raises_with_every_try(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import converters.quantize_onnx as qo

    def refuse(path: Path) -> dict[str, str]:
        return {"stage": "load", "error": "Fail: simulated refusal"}

    monkeypatch.setattr(qo, "_load_problem", refuse)
    src, calib = _conv11(tmp_path)
    with pytest.raises(ConversionError, match="would not load in onnxruntime") as err:
        OnnxQuantizer(src, calib, tmp_path).quantize(OnnxQuantOptions(), tmp_path / "q.onnx")
    assert err.value.tool == "onnxruntime" and err.value.stage == "load"
    assert err.value.tried == ["as configured", "per-tensor", "QOperator"]
    assert err.value.cause == "Fail: simulated refusal"


def test_op_types_that_will_not_load_are_kept_float(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With only the keep-float variant after the configured one, the load errors' op types
    (the conv's bias, then the head's per-channel weight) are kept float until it loads."""
    import onnx

    import converters.quantize_onnx as qo

    monkeypatch.setattr(qo, "_upgrade", lambda fp32, out: (fp32, []))
    monkeypatch.setattr(qo, "_variants", lambda o, *_: [("as configured", o), (qo.KEEP_FAILING, o)])
    src, calib = _conv11(tmp_path)
    info = OnnxQuantizer(src, calib, tmp_path).quantize(OnnxQuantOptions(), tmp_path / "q.onnx")
    _loads(tmp_path / "q.onnx")
    assert info["variant"].startswith("keep-float Conv")
    assert [(t["variant"], t["op_types"]) for t in info["tried"]] == [
        ("as configured", "Conv"), ("keep-float Conv", "MatMul")]
    assert info["options"]["exclude"] and info["options"]["per_channel"] is True
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert "QuantizeLinear" in ops and "Conv" in ops


@pytest.mark.parametrize("as_constant", [False, True])
def test_fp16_keeps_nodes_with_constants_beyond_fp16_range_in_float(tmp_path: Path,
                                                                    as_constant: bool) -> None:
    """A BatchNorm variance of 1e8 (as in a real OCR detector) used to be clamped to 1e4 by the
    fp16 converter (outputs 100x off here; cosine 0.2 after the real model's later layers). The
    node reading it now stays float32. The OCR detector holds it in a ``Constant`` node, which
    the converter cast to fp16 (inf) even when kept: it becomes an initializer first."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from converters.quantize_fp16 import convert_fp16

    rng = np.random.default_rng(0)
    c = 4
    inits = [numpy_helper.from_array(rng.normal(size=(c, c, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.full(c, 3e3, np.float32), "scale"),
             numpy_helper.from_array(np.zeros(c, np.float32), "bias"),
             numpy_helper.from_array(np.zeros(c, np.float32), "mean"),
             numpy_helper.from_array(np.full(c, 1e8, np.float32), "var")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["h", "scale", "bias", "mean", "var"], ["y"])]
    if as_constant:
        nodes.insert(0, helper.make_node("Constant", [], ["var"], value=inits.pop()))
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, c, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, c, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "bn.onnx"))

    info = convert_fp16(tmp_path / "bn.onnx", tmp_path / "bn.fp16.onnx")

    x = rng.normal(size=(1, c, 8, 8)).astype(np.float32)
    ref, got = (ort.InferenceSession(str(tmp_path / f), providers=["CPUExecutionProvider"])
                .run(None, {"x": x})[0] for f in ("bn.onnx", "bn.fp16.onnx"))
    assert float(np.max(np.abs(got - ref))) <= 0.01 * float(np.max(np.abs(ref)))  # not 100x off
    assert len(info["kept_float"]) == 1  # the BatchNorm, named for the converter


def test_fp16_keeps_nodes_around_an_overflowing_activation_in_float(tmp_path: Path) -> None:
    """``x * 3e4 / 3e4``: every constant fits fp16, the activation between them (up to 1.2e5)
    does not. Measured on samples, both nodes around it stay float32. (onnx's reference runtime
    computes fp16 as written; onnxruntime's CPU provider upcasts these two ops and hides the
    overflow that fp16 kernels — TensorRT, ARM — produce: the blind file is judged by its
    types.)"""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from converters.quantize_fp16 import convert_fp16

    inits = [numpy_helper.from_array(np.array(3e4, np.float32), "k")]
    nodes = [helper.make_node("Mul", ["x", "k"], ["big"], name="up"),
             helper.make_node("Div", ["big", "k"], ["y"], name="down")]
    graph = helper.make_graph(nodes, "ovf", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "ovf.onnx"))
    x = np.linspace(-4, 4, 32, dtype=np.float32).reshape(4, 8)

    def k_type(name: str) -> int:  # the constant is converted with the nodes reading it
        return next(i.data_type for i in onnx.load(str(tmp_path / name)).graph.initializer
                    if i.name == "k")

    blind = convert_fp16(tmp_path / "ovf.onnx", tmp_path / "blind.onnx")
    assert blind["kept_float"] == [] and k_type("blind.onnx") == TensorProto.FLOAT16
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.float16(x.max() * 3e4))  # what an fp16 Mul stores
    info = convert_fp16(tmp_path / "ovf.onnx", tmp_path / "ovf16.onnx", {"x": x})
    assert info["kept_float"] == ["up", "down"] and info["activation_peak"] == 1.2e5
    assert k_type("ovf16.onnx") == TensorProto.FLOAT
    sess = ort.InferenceSession(str(tmp_path / "ovf16.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": x[:1]})[0], x[:1], atol=1e-3)


def test_tflite_int16_activations_rescue_an_activation_outlier_as_int8(
        mlps: dict, tmp_path: Path) -> None:
    """The same outlier through onnx2tf: full-integer int8 fails its gate, TFLite's 16x8 mode
    (int8 weights, int16 activations) passes and ships as the int8 artifact, before fp16."""
    from ai_edge_litert.interpreter import Interpreter

    from converters import build_bundle
    from profiles.schema import Profile

    model, data, _ = mlps["activation"]
    profile = Profile.model_validate({"name": "t", "arch": "aarch64",
                                      "budgets": {"max_accuracy_drop": 0.05}, "artifacts": [
                                          {"format": "tflite", "precision": "fp32"},
                                          {"format": "tflite", "precision": "int8"}]})
    bundle = build_bundle(str(model), profile, data, Paths(home=tmp_path), progress=lambda s: None)
    m = bundle.manifest
    assert [a["key"] for a in m["artifacts"]] == ["tflite-fp32", "tflite-int8"], m["left_out"]
    int8 = m["artifacts"][1]
    assert int8["fallback"]["taken"] == "int16-activations"
    assert int8["fallback"]["figures"][0]["passed"] is False  # full-integer int8 as configured
    assert int8["converter"]["variant"] == "integer_quant_with_int16_act"
    kinds = {np.dtype(t["dtype"]).name
             for t in Interpreter(str(bundle.path / int8["file"])).get_tensor_details()}
    assert {"int8", "int16"} <= kinds


def test_tensorrt_int8_is_symmetric_qdq_and_skips_remedies_tensorrt_cannot_build(
        mlps: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT builds int8 Q/DQ with zero points of 0 only, and no int16 Q/DQ or dynamic int8
    operators: a ``runner: tensorrt`` artifact is quantized so, and its remedies stay in that."""
    import onnx
    from onnx import numpy_helper

    from converters import build_bundle
    from profiles.schema import Profile

    monkeypatch.setattr("converters.fallback._keep_counts", lambda n: [1])
    model, data, _ = mlps["activation"]
    profile = Profile.model_validate({"name": "t", "arch": "aarch64",
                                      "budgets": {"max_accuracy_drop": 0.05}, "artifacts": [
                                          {"format": "onnx", "precision": "fp32"},
                                          {"format": "onnx", "precision": "int8",
                                           "runner": "tensorrt"}]})
    bundle = build_bundle(str(model), profile, data, Paths(home=tmp_path), progress=lambda s: None)
    m = bundle.manifest
    fp16 = next(a for a in m["artifacts"] if a.get("requested") == "onnx-int8")
    assert fp16["fallback"]["tried"] == ["calibration-percentile", "keep-float-1",
                                         "weight-ops-only", "keep-float-Gemm", "fp16"]
    skipped = {f["remedy"]: f["skipped"] for f in fp16["fallback"]["figures"] if "skipped" in f}
    assert skipped == {"int16-activations": "the artifact runs on TensorRT, which builds int8 "
                                            "Q/DQ only",
                       "dynamic": "the artifact runs on TensorRT, which builds int8 Q/DQ only"}

    profile = profile.model_copy(update={"budgets": profile.budgets.model_copy(
        update={"max_accuracy_drop": 1.0})})  # as configured passes: look at the file itself
    bundle = build_bundle(str(model), profile, data, Paths(home=tmp_path / "b"),
                          progress=lambda s: None)
    int8 = next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-int8")
    assert int8["quantization"]["symmetric"] is True and int8["quantization"]["activations"] == "int8"
    graph = onnx.load(str(bundle.path / int8["file"])).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    zero_points = [inits[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)


def test_tensorrt_artifact_refuses_uint8_activations() -> None:
    from pydantic import ValidationError

    from profiles.schema import Artifact

    with pytest.raises(ValidationError, match="runner: tensorrt builds static int8 Q/DQ with "
                                              "int8 activations only"):
        Artifact(format="onnx", precision="int8", runner="tensorrt",
                 quantization={"activations": "uint8"})


def test_tflite_dynamic_int8_rescues_a_matmul_model_whose_calibration_misleads(
        mlps: dict, tmp_path: Path) -> None:
    """The same misleading calibration through onnx2tf: full-integer and 16x8 clip, TFLite's
    dynamic-range int8 (the transformer remedy) passes and ships as the int8 artifact."""
    from converters import build_bundle
    from profiles.schema import Profile

    model, data, x = mlps["plain"]
    labels = np.load(data)["labels"]
    np.savez(tmp_path / "d.npz", x=x, labels=labels, **{"calibration.x": x[:100] * 0.01})
    profile = Profile.model_validate({"name": "t", "arch": "aarch64",
                                      "budgets": {"max_accuracy_drop": 0.05}, "artifacts": [
                                          {"format": "tflite", "precision": "fp32"},
                                          {"format": "tflite", "precision": "int8"}]})
    bundle = build_bundle(str(model), profile, tmp_path / "d.npz", Paths(home=tmp_path),
                          progress=lambda s: None)
    int8 = bundle.manifest["artifacts"][1]
    assert int8["key"] == "tflite-int8" and int8["verification"]["passed"]
    assert int8["fallback"]["taken"] == "dynamic"
    assert int8["fallback"]["tried"][-2:] == ["int16-activations", "dynamic"]
    assert int8["converter"]["variant"] == "dynamic_range_quant"


def test_fp16_keeps_the_cast_of_a_shape_value_into_a_float_range(tmp_path: Path) -> None:
    """YOLOv8's head: ``Range(0.0, Cast(int64 → float)(Gather(Shape(x))), 1.0)``. The converter
    keeps Range in float and puts ``Cast(fp16) → Cast(fp32)`` around the shape value; that pair
    is no float round trip and was removed, leaving Range with an int64 limit (not loadable)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from converters.quantize_fp16 import convert_fp16

    consts = [numpy_helper.from_array(np.array(v, dt), n) for n, v, dt in (
        ("zero", 0.0, np.float32), ("one", 1.0, np.float32), ("idx", 1, np.int64),
        ("two", 2.0, np.float32))]
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "idx"], ["n"], axis=0),
             helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
             helper.make_node("Range", ["zero", "nf", "one"], ["r"]),
             helper.make_node("Mul", ["x", "two"], ["y0"]),
             helper.make_node("Add", ["y0", "r"], ["y"])]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
                              consts)
    src, out = tmp_path / "r.onnx", tmp_path / "r16.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), str(src))
    convert_fp16(src, out)
    x = np.arange(6, dtype=np.float32)[None]
    got = ort.InferenceSession(str(out)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, x * 2 + np.arange(6), atol=1e-2)


def test_weight_ops_only_rescues_an_outlier_outside_the_weight_layers(
        mlps: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A constant -5000 logit concatenated to the scores: int8 on the Concat's output (one scale
    for all) crushes the logits; Q/DQ at the weight layers only (TensorRT's placement) leaves
    the Concat float and passes — for a TensorRT artifact too. (The keep-float step is left out to show this remedy
    alone.)"""
    from converters import build_bundle
    from profiles.schema import Profile

    monkeypatch.setattr("converters.fallback._keep_counts", lambda n: [])
    model, data, _ = mlps["tail"]
    for runner in ("auto", "tensorrt"):
        profile = Profile.model_validate({"name": "t", "arch": "aarch64",
                                          "budgets": {"max_accuracy_drop": 0.05}, "artifacts": [
                                              {"format": "onnx", "precision": "fp32"},
                                              {"format": "onnx", "precision": "int8",
                                               "runner": runner}]})
        bundle = build_bundle(str(model), profile, data, Paths(home=tmp_path / runner),
                              progress=lambda s: None)
        int8 = next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-int8")
        assert int8["fallback"]["tried"] == ["calibration-percentile", "weight-ops-only"], runner
        assert int8["fallback"]["figures"][0]["passed"] is False
        assert int8["quantization"]["op_types"] == ["Conv", "ConvTranspose", "MatMul", "Gemm"]


def _ffn(tmp: Path) -> tuple[Path, Path]:
    """Two MatMul layers, then a hidden unit at 2000 read by two Gemm layers (a transformer's
    feed-forward outlier): int8 at the Gemm inputs crushes every other unit."""
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(3)
    w = [rng.normal(0, 0.5, shape).astype(np.float32)
         for shape in ((DIN, HID), (HID, HID), (HID, HID), (HID, CLASSES))]
    w[2][0, :] *= 1e-4  # the outlier unit barely matters to the output
    outlier = np.zeros(HID, np.float32)
    outlier[0] = 2000.0
    inits = [nh.from_array(a, f"w{i}") for i, a in enumerate(w)]
    inits += [nh.from_array(outlier, "outlier"), nh.from_array(np.zeros(HID, np.float32), "b2"),
              nh.from_array(np.zeros(CLASSES, np.float32), "b3")]
    nodes = [h.make_node("MatMul", ["x", "w0"], ["m0"], name="proj0"),
             h.make_node("Relu", ["m0"], ["r0"], name="relu0"),
             h.make_node("MatMul", ["r0", "w1"], ["m1"], name="proj1"),
             h.make_node("Relu", ["m1"], ["r1"], name="relu1"),
             h.make_node("Add", ["r1", "outlier"], ["a1"], name="spike"),
             h.make_node("Gemm", ["a1", "w2", "b2"], ["g2"], name="ffn_up"),
             h.make_node("Relu", ["g2"], ["r2"], name="relu2"),
             h.make_node("Gemm", ["r2", "w3", "b3"], ["logits"], name="ffn_down")]
    path = _saved(tmp / "ffn.onnx", nodes, inits, [1, DIN])
    x = np.random.default_rng(1).normal(0, 1, (300, DIN)).astype(np.float32)
    np.savez(tmp / "ffn.npz", x=x, **{"calibration.x": x[:100]})
    return path, tmp / "ffn.npz"


def test_keep_float_of_one_layer_type_rescues_an_outlier_all_its_layers_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """all-MiniLM's pattern: each Gemm alone hurts little, all of them together break the
    output; Q/DQ at the weight layers only still quantizes the Gemm inputs. Each minority
    type is tried in float, fewest layers first, after the CPU remedies (withheld here, as is
    keep-float-N, to show the remedy alone); the one that passes is delivered, its quantized
    types recorded — for a TensorRT artifact too, where it follows weight-ops-only."""
    from converters import build_bundle
    from converters.int8_layers import float_type_splits
    from profiles.schema import Profile

    monkeypatch.setattr("converters.fallback._keep_counts", lambda n: [])
    monkeypatch.setattr("converters.fallback._int16_activations", _no_int16)
    monkeypatch.setattr("converters.fallback._dynamic_int8", _no_dynamic)
    model, data = _ffn(tmp_path)
    assert float_type_splits(model) == [("MatMul", ("Gemm",)), ("Gemm", ("MatMul",))]
    for runner in ("auto", "tensorrt"):
        profile = Profile.model_validate({"name": "t", "arch": "aarch64", "artifacts": [
            {"format": "onnx", "precision": "fp32"},
            {"format": "onnx", "precision": "int8", "runner": runner}]})
        bundle = build_bundle(str(model), profile, data, Paths(home=tmp_path / runner),
                              progress=lambda s: None)
        int8 = next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-int8")
        fallback = int8["fallback"]
        cpu_only = ["int16-activations", "dynamic"] if runner == "auto" else []
        assert fallback["tried"] == ["calibration-percentile", "weight-ops-only", *cpu_only,
                                     "keep-float-MatMul", "keep-float-Gemm"]
        assert [f["passed"] for f in fallback["figures"] if "passed" in f] == [False] * 4 + [True]
        assert fallback["taken"] == "keep-float-Gemm" and int8["precision"] == "int8"
        assert int8["quantization"]["op_types"] == ["MatMul"], runner


def test_a_majority_layer_type_is_never_kept_float(tmp_path: Path) -> None:
    """A CNN with one classifier Gemm: the Gemm may stay float, the convolutions may not (the
    artifact would be int8 in name only); one type only: no such remedy."""
    from onnx import TensorProto
    from onnx import helper as h

    from converters.int8_layers import float_type_splits

    def graph(ops: list[str]) -> object:
        nodes = [h.make_node(op, ["x"], [f"y{i}"], name=f"n{i}") for i, op in enumerate(ops)]
        return h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info(
            "x", TensorProto.FLOAT, [1])], []))

    import onnx

    for ops, want in ((["Conv"] * 5 + ["Gemm"], [("Gemm", ("Conv",))]), (["Conv"] * 3, []),
                      (["MatMul"] * 2 + ["Gemm"] * 3, [("MatMul", ("Gemm",))])):
        path = tmp_path / "g.onnx"
        onnx.save(graph(ops), str(path))
        assert float_type_splits(path) == want, ops


def test_an_int16_remedy_far_slower_than_fp32_is_not_taken(mlps: dict, tmp_path: Path) -> None:
    """The OCR detector's TFLite 16x8 file ran 1996 ms against 106 ms for fp32: such a remedy
    passes its gate but is not delivered; a tiny model's microseconds are noise, not a reason."""
    from converters.fallback import Int8Job
    from converters.speed_guard import too_slow

    model, _, x = mlps["plain"]
    job = Int8Job("onnx-int8", "onnx", tmp_path / "model.int8.onnx", model, None, {"x": x[:8]},
                  {"x": x[:8]}, 1, lambda s: None)

    class Check:
        shapes = {"x": (1, DIN)}

    figures: list[dict] = [{"remedy": "int16-activations"}]
    assert too_slow(job, {"host_latency_ms": {"p50": 5000.0}}, Check(), figures)
    assert figures[-1]["too_slow"] is True and figures[-1]["fp32_host_p50_ms"] < 5000.0
    figures = [{"remedy": "int16-activations"}]
    assert not too_slow(job, {"host_latency_ms": {"p50": 0.5}}, Check(), figures)
    assert "too_slow" not in figures[-1]


def test_the_int16_speed_guard_times_the_remedy_beside_its_base(
        mlps: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Timed minutes apart on a busy host, the OCR detector's int16 ONNX came out at 1.6x fp32
    on one run and 2.2x on another: the guard times the remedy's file and the fp32 model in
    alternating rounds, and its own figure decides, not the one from verification."""
    import shutil

    from converters.fallback import Int8Job
    from converters.speed_guard import too_slow

    model, _, x = mlps["plain"]
    shutil.copyfile(model, tmp_path / "model.int8.onnx")  # as fast as fp32: the same graph
    job = Int8Job("onnx-int8", "onnx", tmp_path / "model.int8.onnx", model, None, {"x": x[:8]},
                  {"x": x[:8]}, 1, lambda s: None)

    class Check:
        shapes = {"x": (1, DIN)}

    figures: list[dict] = [{"remedy": "int16-activations"}]
    entry = {"file": "model.int8.onnx", "host_latency_ms": {"p50": 5000.0}}  # a stale figure
    assert not too_slow(job, entry, Check(), figures)
    assert figures[-1]["side_by_side"] is True and figures[-1]["host_p50_ms"] < 5000.0
    # a sub-millisecond model 10x slower, timed side by side: no noise, not taken
    monkeypatch.setattr("converters.speed_guard._side_by_side", lambda one, two: (0.5, 0.05))
    figures = [{"remedy": "int16-activations"}]
    assert too_slow(job, entry, Check(), figures) and figures[-1]["too_slow"] is True


def test_side_by_side_rounds_of_a_tiny_model_are_long_enough_to_mean_something() -> None:
    """5 runs of a 0.1 ms model are scheduler noise (Silero op15's int16 against fp32: 0.9x to
    2.7x in repeated quiet timings); each round runs the slower one for ~50 ms instead, 5 runs
    at the least (a 1.5 s TFLite 16x8 file is not timed for minutes)."""
    from converters.speed_guard import SIDE_BY_SIDE_ROUNDS, _side_by_side

    calls = {"one": 0, "two": 0}

    def tiny(name: str) -> None:
        calls[name] += 1

    fast, base = _side_by_side(lambda: tiny("one"), lambda: tiny("two"))
    assert calls["one"] >= SIDE_BY_SIDE_ROUNDS * 200 and calls["two"] >= SIDE_BY_SIDE_ROUNDS * 200
    assert fast >= 0 and base >= 0
    calls.update(one=0, two=0)

    def slow() -> None:
        calls["one"] += 1
        time.sleep(0.03)

    _side_by_side(slow, lambda: tiny("two"))
    assert calls["one"] <= 2 + SIDE_BY_SIDE_ROUNDS * (5 + 2)  # the probe, then 5 runs a round


def test_a_tflite_int16_remedy_is_timed_against_the_fp32_tflite_file(
        mlps: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Silero's 16x8 TFLite ran 1.26 ms, under twice its fp32 ONNX (with If branches) but 12x
    the fp32 TFLite file: the same format's fp32 is the base when the profile builds it."""
    import time as _time

    from converters.fallback import Int8Job
    from converters.speed_guard import too_slow

    used: list[Path] = []

    class SlowTflite:  # the fp32 TFLite file: 3 ms a run
        def __init__(self, path: Path, shapes: dict, threads: int, source: object = None) -> None:
            used.append(path)

        def prepare(self, feed: dict) -> list:
            return [feed["x"]]

        def invoke(self, native: list) -> list:
            _time.sleep(0.003)
            return native

    monkeypatch.setattr("converters._runners.TfliteRunner", SlowTflite)
    model, _, x = mlps["plain"]
    job = Int8Job("tflite-int8", "tflite", tmp_path / "model.int8.tflite", model, None,
                  {"x": x[:8]}, {"x": x[:8]}, 1, lambda s: None)

    class Check:
        shapes = {"x": (1, DIN)}

    figures: list[dict] = [{"remedy": "int16-activations"}]
    assert too_slow(job, {"host_latency_ms": {"p50": 4.0}}, Check(), figures)  # vs fp32 ONNX
    assert used == []
    (tmp_path / "model.fp32.tflite").write_bytes(b"")
    figures = [{"remedy": "int16-activations"}]
    assert not too_slow(job, {"host_latency_ms": {"p50": 4.0}}, Check(), figures)
    assert used == [tmp_path / "model.fp32.tflite"] and figures[-1]["fp32_host_p50_ms"] >= 3.0
