"""Fidelity you can trust: outputs by name in the source's layout (failure kind 1), each output
judged by its kind with thresholds from the profile (kind 3), host timing with at most the host's
cores (kind 8), and the first diverging operator named."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from converters import build_bundle
from converters.divergence import diagnose, first_divergence
from converters.verify import Reference, compare, host_threads
from core.paths import Paths
from profiles import Artifact, Fidelity, load_profile

HERE = Path(__file__).resolve().parent
SHAPE = (1, 3, 20, 24)
KEYS = ("onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8")


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory):
    """A 3-output model (logits, NCHW map, boxes) for a 64-thread profile: all four artifacts."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    sim = load_profile("sim")
    profile = sim.model_copy(update={
        "artifacts": tuple(Artifact(format=k.split("-")[0], precision=k.split("-")[1])
                           for k in KEYS),
        "runtime": sim.runtime.model_copy(update={"threads": 64})})
    bundle = build_bundle("conv_models:multi_head", profile, None,
                          Paths(home=tmp_path_factory.mktemp("multi")),
                          input_shapes={"x": SHAPE})
    return bundle


def _art(bundle, key: str) -> dict:
    return next(a for a in bundle.manifest["artifacts"] if a["key"] == key)


# -- failure kind 1: outputs by name, in the source's layout ---------------------------------
def test_tflite_outputs_are_mapped_to_the_source(multi) -> None:
    for key in KEYS:
        art = _art(multi, key)
        assert art["verification"]["passed"], (key, art["verification"]["reason"])
        assert [o["source_name"] for o in art["outputs"]] == ["output_0", "output_1", "output_2"]
    fp32 = _art(multi, "tflite-fp32")
    the_map = fp32["outputs"][1]
    assert the_map["shape"] == [1, 10, 12, 4] and the_map["transpose"] == [0, 2, 3, 1]
    assert the_map["layout"] == "NHWC"
    assert _art(multi, "onnx-fp32")["outputs"][1]["layout"] == "NCHW"
    for out in fp32["verification"]["outputs"]:  # exact, not "cosine 0.50"
        assert out["max_error_of_range"] < 1e-5 and out["passed"]
    for out in _art(multi, "tflite-int8")["verification"]["outputs"]:
        assert out["cosine"] > 0.99


def test_full_int8_output_order_is_resolved(multi) -> None:
    from ai_edge_litert.interpreter import Interpreter

    art = _art(multi, "tflite-int8")
    it = Interpreter(model_path=str(multi.path / art["file"]))
    listed = [d["name"] for d in it.get_output_details()]
    assert sorted(listed) == sorted(o["name"] for o in art["outputs"])
    shapes = {d["name"]: list(d["shape"]) for d in it.get_output_details()}
    for out in art["outputs"]:  # each manifest entry names the tensor that really is it
        assert shapes[out["name"]] == out["shape"]


def test_agent_reads_outputs_in_the_source_order_and_layout(multi) -> None:
    from profiler.agent import AGENT_PATH

    spec = importlib.util.spec_from_file_location("agent_under_test", AGENT_PATH)
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)  # type: ignore[union-attr]
    samples = np.load(multi.path / "samples.npz")
    got = {}
    for key in ("onnx-fp32", "tflite-int8", "tflite-fp32"):
        art = _art(multi, key)
        cls = agent.RUNNERS[art["format"]]
        runner = cls(str(multi.path / art["file"]), 1, ["CPUExecutionProvider"], 1)
        feed = runner.prepare(agent.prepare_feeds(samples, art["inputs"], limit=1)[0])
        got[key] = agent.source_outputs(runner(feed), runner, art["outputs"])
        described = agent.describe_outputs(runner(feed), runner, art["outputs"])
        assert [d["shape"] for d in described] == [[1, 5], [1, 4, 10, 12], [1, 4]]
    for key in ("tflite-fp32", "tflite-int8"):
        for (name, y), (ref_name, ref) in zip(got[key], got["onnx-fp32"]):
            assert name == ref_name
            np.testing.assert_allclose(y, ref, atol=0.02 * float(np.ptp(ref)) + 1e-6)


# -- failure kind 3: each output judged by what it is ----------------------------------------
def _detector(n: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(n, 3)).astype(np.float32)
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    xy = rng.uniform(0, 600, size=(n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 40, size=(n, 2))], 1).astype(np.float32)
    return [scores, boxes]


def test_boxes_off_by_137_px_fail_although_cosine_is_high() -> None:
    ref = _detector()
    outs = [ref[0].copy(), ref[1].copy()]
    outs[1][5, 0] += 137.0
    v = compare(outs, ref, None, 0.01)
    assert v.cosine > 0.999 and not v.passed
    assert "output 'output_1' (regression): max abs error / range" in v.reason
    assert "> 0.05 (fidelity.max_box_error)" in v.reason
    loose = compare(outs, ref, None, 0.01, fidelity=Fidelity(max_box_error=0.5))
    assert loose.passed  # the threshold lives in the profile


def test_box_regression_is_not_judged_by_top1() -> None:
    """A 2-D *first* output that is boxes: top-1 agreement on it is noise, not fidelity."""
    scores, boxes = _detector()
    boxes[:, 1], boxes[:, 3] = boxes[:, 0] + 0.01, boxes[:, 2] + 0.01  # ~square: a coin toss
    ref = [boxes, scores]
    outs = [boxes + np.random.default_rng(1).normal(0, 0.05, boxes.shape), scores.copy()]
    v = compare([o.astype(np.float32) for o in outs], ref, None, 0.01)
    kinds = {o["name"]: (o["kind"], o["kind_from"]) for o in v.outputs}
    assert kinds == {"output_0": ("regression", "shape"), "output_1": ("classes", "values")}
    assert v.passed, v.reason
    forced = compare([o.astype(np.float32) for o in outs], ref, None, 0.01,
                     fidelity=Fidelity(outputs={"output_0": "classes"}, top1_tie_ratio=1.0))
    assert not forced.passed and "fidelity.min_top1_agreement" in forced.reason


def test_fp32_drift_is_a_conversion_bug() -> None:
    ref = _detector()
    drifted = [ref[0] + 0.085 * np.float32(0.01), ref[1]]  # 0.00085 of a ~1-wide range
    v = compare(drifted, ref, None, 0.01, precision="fp32")
    assert not v.passed and "(fidelity.fp32_tolerance)" in v.reason
    assert compare(drifted, ref, None, 0.01).passed  # an int8 artifact may drift that much
    assert compare(drifted, ref, None, 0.01, precision="fp32",
                   fidelity=Fidelity(fp32_tolerance=0.01)).passed


def test_fp32_error_of_a_near_constant_output_is_judged_on_its_magnitude() -> None:
    """A speech probability that stays near 6e-4 (range 1e-5): fp32 rounding of 4e-8 is 0.4 %
    of that range but 7e-5 of the value — a correct conversion, not drift; 1e-5 of error is."""
    rng = np.random.default_rng(3)
    prob = (6e-4 + rng.uniform(0, 1e-5, (24, 1))).astype(np.float32)
    rounded = prob + np.float32(4e-8)
    v = compare([rounded], [prob], None, 0.01, precision="fp32")
    assert v.passed, v.reason
    assert "max abs error / max(range, |mean|)" in v.reason
    assert not compare([prob + np.float32(1e-5)], [prob], None, 0.01, precision="fp32").passed


def test_kind_is_inferred_from_names_shapes_and_values() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(8, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ref = Reference.of([np.zeros((8, 4, 5, 5)), emb, rng.normal(size=(8, 7)),
                        rng.normal(size=(8, 100, 4))], ["a", "b", "pred_boxes", "box_scores"])
    assert ref.kinds == [("map", "shape"), ("embedding", "values"), ("boxes", "name"),
                         ("classes", "name")]
    assert Reference.of([rng.normal(size=(8, 10))], ["output"]).kinds == [("classes", "shape")]
    logits = rng.normal(size=(8, 40, 97))  # a CTC recogniser: a distribution per position
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert Reference.of([probs], ["softmax_11.tmp_0"]).kinds == [("classes", "values")]
    assert Reference.of([logits], ["seq"]).kinds == [("other", "shape")]
    flag = rng.normal(size=(8, 1, 1, 1))  # face mesh's face-presence score: one value, no map
    assert Reference.of([flag], ["conv2d_31"]).kinds == [("regression", "shape")]


def test_a_score_per_sample_beside_other_outputs_is_a_binary_decision() -> None:
    """Face mesh: 1404 landmark values and one face-presence logit per face. int8 moved the
    logit of a face the source scored 0.62 to 0.31 (a flip, counted), and every other logit by
    up to 1.5 (7 % of their range: a "regression" failure, though no other decision changed).
    Judged as the decision it is: 1 flip of 24 passes; three confident faces lost fail. A
    probability (all in [0, 1]: a VAD's speech probability) is cut at 0.5; alone, one value
    per sample stays a regression."""
    rng = np.random.default_rng(5)
    marks = rng.normal(0, 50, (24, 1, 1, 1404)).astype(np.float32)
    logit = rng.uniform(2, 15, (24, 1, 1, 1)).astype(np.float32)
    logit[5], logit[9] = 0.48, -5.5
    moved = logit + rng.uniform(-1.5, 1.5, logit.shape).astype(np.float32)
    moved[5], moved[9] = -0.8, -4.9
    ref = Reference.of([marks, logit], ["conv2d_21", "conv2d_31"])
    assert ref.kinds[1] == ("classes", "shape")
    v = compare([marks, moved], ref, None, 0.01)
    assert v.passed, v.reason
    flag = next(o for o in v.outputs if o["name"] == "conv2d_31")
    assert flag["top1_flips"] == 1 and flag["top1_samples"] == 24
    lost = moved.copy()
    lost[:3] = -2.0
    v = compare([marks, lost], ref, None, 0.01)
    assert not v.passed and "output 'conv2d_31' (classes): top-1 flips 4 > 1" in v.reason
    prob = rng.uniform(0, 1, (24, 1)).astype(np.float32)
    shifted = prob.copy()
    shifted[prob[:, 0] > 0.5] = 0.51  # every decision kept, values moved by up to 0.49
    state = rng.normal(size=(24, 2, 1, 8)).astype(np.float32)
    assert compare([shifted, state], Reference.of([prob, state], ["output", "stateN"]), None,
                   0.01).passed
    assert Reference.of([prob], ["output"]).kinds == [("regression", "shape")]


def test_a_sequence_of_distributions_is_judged_by_its_top1_per_position() -> None:
    """PP-OCRv4's recogniser: [N, 40, 6625] softmax. int8 moved the probability mass (cosine
    0.95) yet the characters read (top-1 per position) are what the output means."""
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(24, 40, 50)) * 3
    logits[..., 0] += 4  # mostly the CTC blank, as on a text line
    want = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    noisy = logits + rng.normal(0, 0.3, logits.shape)
    got = np.exp(noisy) / np.exp(noisy).sum(-1, keepdims=True)
    v = compare([got.astype(np.float32)], [want.astype(np.float32)], None, 0.01)
    (out,) = v.outputs
    assert out["kind"] == "classes" and out["top1_samples"] == 24 * 40


def test_fidelity_section_is_strict() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_box_eror"):
        Fidelity(max_box_eror=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="classes"):
        Fidelity(outputs={"x": "class"})  # type: ignore[dict-item]
    assert load_profile("sim").fidelity == Fidelity()


# -- failure kind 8: host timing with at most the host's cores -------------------------------
def test_host_latency_uses_at_most_the_host_cores(multi) -> None:
    cores = os.cpu_count() or 1
    assert host_threads(64) == min(64, cores) and host_threads(1) == 1
    for art in multi.manifest["artifacts"]:
        lat = art["host_latency_ms"]
        assert lat["host"] is True and lat["threads"] == min(64, cores)
        assert lat["board_threads"] == 64 and lat["p50"] > 0


# -- the first diverging operator ------------------------------------------------------------
def _perturbed(src: Path, out: Path, initializer: str) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    init = next(i for i in model.graph.initializer if i.name == initializer)
    arr = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array((-arr).astype(arr.dtype), init.name))
    onnx.save(model, str(out))


def _feeds(bundle, n: int = 3) -> list[dict[str, np.ndarray]]:
    x = np.load(bundle.path / "samples.npz")["input"]
    return [{"input": x[i:i + 1]} for i in range(n)]


def _conv_nodes(path: Path) -> list[tuple[str, list[str]]]:
    import onnx

    return [(n.name, list(n.input)) for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]


def test_int8_layer_perturbed_is_named(multi, tmp_path: Path) -> None:
    fp32, int8 = multi.path / "model.fp32.onnx", multi.path / "model.int8.onnx"
    assert first_divergence("onnx", int8, fp32, _feeds(multi), 0.1)["op"] is None
    map_conv = _conv_nodes(fp32)[1][0]  # the second conv: the map head
    weight = next(i for n, ins in _conv_nodes(int8) if n == map_conv for i in ins
                  if "weight" in i)
    import onnx

    q = onnx.load(str(int8))
    dq = next(n for n in q.graph.node if n.output[0] == weight)  # DequantizeLinear of the weight
    broken = tmp_path / "broken.int8.onnx"
    _perturbed(int8, broken, dq.input[0])
    found = first_divergence("onnx", broken, fp32, _feeds(multi), 0.1)
    assert (found["op"], found["name"], found["matched_by"]) == ("Conv", map_conv, "name")
    assert found["value"] > 0.5 and found["metric"] == "relative RMS error"


def test_failed_gate_reason_names_the_first_diverging_op(multi, tmp_path: Path) -> None:
    from converters._runners import open_runner
    from converters.verify import collect_outputs

    fp32, int8 = multi.path / "model.fp32.onnx", multi.path / "model.int8.onnx"
    stem = _conv_nodes(fp32)[0]
    broken = tmp_path / "broken.int8.onnx"
    import onnx

    q = onnx.load(str(int8))
    dq = next(n for n in q.graph.node if n.output[0] in _conv_nodes(int8)[0][1][1:2])
    _perturbed(int8, broken, dq.input[0])
    x = np.load(multi.path / "samples.npz")["input"]
    ref = Reference.of(collect_outputs(open_runner("onnx", fp32, {"input": SHAPE}, 1).run,
                                       {"input": x}))
    outs = collect_outputs(open_runner("onnx", broken, {"input": SHAPE}, 1, ref.source()).run,
                           {"input": x})
    failed = compare(outs, ref, None, 0.01)
    assert not failed.passed
    result = diagnose(failed, "onnx", broken, fp32, {"input": x}, "int8", Fidelity())
    found = result.first_divergence
    # the quantizer fuses Conv+Relu: the conv's own output is not in the QDQ graph
    assert stem[0] in [found["name"], *(h["name"] for h in found["not_compared_before"])]
    assert "first diverging op: " in result.reason and repr(stem[0]) in result.reason
    assert ", fidelity.divergence)" in result.reason


def test_tflite_layers_are_matched_by_values(multi, tmp_path: Path) -> None:
    fp32 = multi.path / "model.fp32.onnx"
    tflite = multi.path / "model.fp32.tflite"
    clean = first_divergence("tflite", tflite, fp32, _feeds(multi), 1e-3)
    assert clean["op"] is None and clean["layers_compared"] >= 3, clean
    map_conv, inputs = _conv_nodes(fp32)[1]
    other = tmp_path / "other.fp32.onnx"
    _perturbed(fp32, other, inputs[1])  # the float model's map conv, negated
    found = first_divergence("tflite", tflite, other, _feeds(multi), 1e-3)
    assert found["op"] == "CONV_2D" and found["matched_by"] == "values"
    assert found["onnx_candidate"]["name"] == map_conv


def test_a_tensor_clipped_next_is_compared_after_its_clip(tmp_path: Path) -> None:
    """int8 with zero-point 0 (TensorRT's kind): onnxruntime gives ``x + 3`` the range of the
    ``Clip(0, 6)`` that reads it, so it saturates at ±6 where the clip makes no difference. Its
    raw values are not a divergence; the clip's output is compared (the OCR detector for the
    Jetson was diagnosed "Add 0.50" where the clip after it differed by 0.06)."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    from converters.int8_options import OnnxQuantOptions
    from converters.quantize_onnx import OnnxQuantizer

    rng = np.random.default_rng(0)
    consts = {"w1": rng.normal(0, 1, (8, 16)), "w2": rng.normal(0, 0.3, (16, 4)), "three": 3.0,
              "lo": 0.0, "hi": 6.0}
    nodes = [h.make_node("MatMul", ["x", "w1"], ["a"], name="fc1"),
             h.make_node("Add", ["a", "three"], ["b"], name="shift"),
             h.make_node("Clip", ["b", "lo", "hi"], ["c"], name="clip"),
             h.make_node("MatMul", ["c", "w2"], ["y"], name="fc2")]
    graph = h.make_graph(nodes, "clipped", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 8])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                         [nh.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "f.onnx"))
    x = rng.normal(0, 3, (64, 8)).astype(np.float32)
    quantizer = OnnxQuantizer(tmp_path / "f.onnx", {"x": x}, tmp_path)
    quantizer.quantize(OnnxQuantOptions(symmetric=True), tmp_path / "q.onnx")
    feeds = [{"x": x[i:i + 1]} for i in range(4)]
    found = first_divergence("onnx", tmp_path / "q.onnx", tmp_path / "f.onnx", feeds, 0.1)
    assert found["op"] is None and found["layers_compared"] == 3, found
    tight = first_divergence("onnx", tmp_path / "q.onnx", tmp_path / "f.onnx", feeds, 1e-4)
    assert tight["op"] == "MatMul" and tight["name"] == "fc1"  # still a real comparison
