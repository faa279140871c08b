"""Inputs as the model declares them: recurrent state, scalars, int/bool, dynamic non-first axes.

The VAD-like model has what stateful audio models have in the wild: a batch-first input
(``image [1, 1, 8, 8]``), a recurrent ``state [2, 1, 128]`` whose axis 0 is not samples, and a
scalar int64 sample rate ``sr []``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from converters import build_bundle, load_model, synthetic_dataset
from converters.data import BOARD_SAMPLES, save_board_samples
from converters.feeds import batch_axis, feed_shape, sample_feed
from converters.load import parse_input_shapes
from core.errors import ConfigError
from profiles import load_profile

ONNX_ONLY = load_profile("sim").model_copy(update={"artifacts": load_profile("sim").artifacts[:2]})
FP32_ONLY = load_profile("sim").model_copy(update={"artifacts": load_profile("sim").artifacts[:1]})


class Vad(nn.Module):
    """image [1,1,8,8] + state [2,1,128] + sr [] int64 → speech prob [1,1], next state."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.enc = nn.Linear(64, 128)
        self.rec = nn.Linear(128, 128)
        self.out = nn.Linear(128, 1)

    def forward(self, image: torch.Tensor, state: torch.Tensor,
                sr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probability and the next state."""
        x = torch.relu(self.conv(image)).flatten(1) * (sr.to(torch.float32) / 16000.0)
        h1 = torch.tanh(self.enc(x) + self.rec(state[0]))
        h2 = torch.tanh(self.rec(h1) + state[1])
        return torch.sigmoid(self.out(h2)), torch.stack([h1, h2])


def vad_factory() -> nn.Module:
    """Seeded ``module:factory`` source."""
    torch.manual_seed(0)
    return Vad().eval()


def _export(path: Path, dynamic_state: bool = False) -> Path:
    args = (torch.rand(1, 1, 8, 8), torch.zeros(2, 1, 128), torch.tensor(16000))
    torch.onnx.export(vad_factory(), args, str(path), dynamo=False, opset_version=17,
                      input_names=["image", "state", "sr"], output_names=["prob", "state_out"],
                      dynamic_axes={"state": {1: "batch"}} if dynamic_state else None)
    return path


@pytest.fixture(scope="module")
def vad_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("vad") / "vad.onnx")


def _vad_data(path: Path, n: int = 24, **override: np.ndarray) -> Path:
    rng = np.random.default_rng(1)
    arrays = {"image": rng.random((n, 1, 8, 8), dtype=np.float32),
              "state": (rng.standard_normal((n, 2, 1, 128)) * 0.1).astype(np.float32),
              "sr": np.full(n, 16000, np.int64)}
    np.savez(path, **{**arrays, **override})
    return path


def test_the_feed_rule() -> None:
    assert feed_shape("state", (2, 1, 128), (2, 1, 128)) == (2, 1, 128)  # whole
    assert feed_shape("sr", (), ()) == ()  # scalar
    assert feed_shape("image", (1, 3, 4, 4), (3, 4, 4)) == (1, 3, 4, 4)  # batch axis added
    assert feed_shape("image", (-1, 3, -1, -1), (3, 5, 6)) == (1, 3, 5, 6)
    assert feed_shape("x", None, (7,)) == (1, 7)  # torch without declared shapes: batch-first
    arrays = {"image": np.zeros((5, 3, 4, 4)), "state": np.arange(5 * 256.0).reshape(5, 2, 1, 128),
              "sr": np.arange(5)}
    shapes = {"image": (1, 3, 4, 4), "state": (2, 1, 128), "sr": ()}
    feed = sample_feed(arrays, 3, shapes)
    assert {k: v.shape for k, v in feed.items()} == {"image": (1, 3, 4, 4), "state": (2, 1, 128),
                                                      "sr": ()}
    assert feed["sr"] == 3 and feed["state"][0, 0, 0] == 3 * 256
    assert [batch_axis(arrays[k], shapes[k]) for k in arrays] == [0, None, None]


@pytest.mark.parametrize("declared, per, message", [
    ((2, 1, 128), (1, 128), r"\(1, 128\) but the model expects \[2, 1, 128\]; save it as "
                            r"\[N, 2, 1, 128\] \(whole samples\), first axis"),
    ((), (1,), r"expects \[\]; save it as \[N\] \(whole samples\)"),
    ((1, 3, 4, 4), (3, 5, 5), r"save it as \[N, 1, 3, 4, 4\] \(whole samples\) or "
                              r"\[N, 3, 4, 4\] \(batch axis added\)"),
])
def test_a_sample_that_fits_no_form_is_one_line(declared: tuple, per: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        feed_shape("x", declared, per)
    assert "\n" not in str(err.value)


def test_state_and_scalar_convert_and_verify_without_data(vad_onnx: Path, home) -> None:
    bundle = build_bundle(str(vad_onnx), ONNX_ONLY, None, home)
    arts = {a["key"]: a for a in bundle.manifest["artifacts"]}
    assert set(arts) == {"onnx-fp32", "onnx-int8"}
    for art in arts.values():
        assert art["verification"]["passed"], art["verification"]
        got = [(i["name"], i["shape"], i["dtype"], i["batch_axis"]) for i in art["inputs"]]
        assert got == [("image", [1, 1, 8, 8], "float32", 0),
                       ("state", [2, 1, 128], "float32", None), ("sr", [], "int64", None)]
    assert arts["onnx-fp32"]["verification"]["max_abs_drift"] < 1e-5
    samples = np.load(bundle.path / "samples.npz")
    assert {k: samples[k].shape for k in samples.files} == {
        "image": (4, 1, 8, 8), "state": (4, 2, 1, 128), "sr": (4,)}
    assert samples["sr"].dtype == np.int64 and (samples["sr"] == 1).all()


def test_state_and_scalar_convert_and_verify_with_an_npz(vad_onnx: Path, home,
                                                         tmp_path: Path) -> None:
    bundle = build_bundle(str(vad_onnx), ONNX_ONLY, _vad_data(tmp_path / "vad.npz"), home)
    arts = {a["key"]: a for a in bundle.manifest["artifacts"]}
    assert all(a["verification"]["passed"] for a in arts.values())
    assert arts["onnx-fp32"]["verification"]["samples"] == 24
    assert arts["onnx-fp32"]["verification"]["max_abs_drift"] < 1e-5
    assert arts["onnx-int8"]["converter"]["calibration_samples"] == 24
    samples = np.load(bundle.path / "samples.npz")
    assert samples["state"].shape == (4, 2, 1, 128) and (samples["sr"] == 16000).all()


@pytest.mark.parametrize("override, message", [
    ({"state": np.zeros((24, 1, 128), np.float32)},
     r"^data input 'state' has per-sample shape \(1, 128\) but the model expects \[2, 1, 128\]; "
     r"save it as \[N, 2, 1, 128\]"),
    ({"sr": np.full((24, 1), 16000, np.int64)}, r"^data input 'sr' has per-sample shape \(1,\)"),
    ({"sr": np.full(24, 16000.0, np.float32)},
     r"^data input 'sr' holds float32 values but the model takes int64; save that array as int64"),
])
def test_a_bad_data_file_is_one_line(vad_onnx: Path, home, tmp_path: Path,
                                     override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        build_bundle(str(vad_onnx), ONNX_ONLY, _vad_data(tmp_path / "bad.npz", **override), home)
    assert "\n" not in str(err.value)


def test_torch_source_with_a_declared_state_input(home, tmp_path: Path, monkeypatch) -> None:
    """Torch declares no shapes: ``--input-shape state=2x1x128`` says the state is fed whole."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    bundle = build_bundle("test_inputs_declared:vad_factory", FP32_ONLY,
                          _vad_data(tmp_path / "vad.npz"), home,
                          input_shapes=parse_input_shapes(["state=2x1x128"]))
    art = bundle.manifest["artifacts"][0]
    assert art["verification"]["passed"] and art["verification"]["max_abs_drift"] < 1e-5
    assert [(i["name"], i["shape"], i["batch_axis"]) for i in art["inputs"]] == [
        ("image", [1, 1, 8, 8], 0), ("state", [2, 1, 128], None), ("sr", [1], 0)]


def test_input_shape_fixes_a_second_input(tmp_path: Path, home) -> None:
    path = _export(tmp_path / "vad_dyn.onnx", dynamic_state=True)
    assert load_model(str(path)).input_shapes["state"] == (2, -1, 128)
    with pytest.raises(ConfigError, match=r"'state' has dynamic dimensions \[2, -1, 128\]; pass "
                                          r"--data, or --input-shape state=2x\?x128") as err:
        build_bundle(str(path), FP32_ONLY, None, home)
    assert "\n" not in str(err.value)
    shapes = parse_input_shapes(["state=2x1x128"])
    bundle = build_bundle(str(path), FP32_ONLY, None, home, input_shapes=shapes)
    art = bundle.manifest["artifacts"][0]
    assert art["verification"]["passed"] and art["inputs"][1]["shape"] == [2, 1, 128]
    assert art["converter"]["input_shapes_fixed"] == {"state": [2, 1, 128]}


def _int_bool_model(path: Path) -> Path:
    """x [1, 4] float, k [] int32, flag [] bool → where(flag, x * k, -x)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x", "kf"], ["xk"]),
             helper.make_node("Neg", ["x"], ["nx"]),
             helper.make_node("Where", ["flag", "xk", "nx"], ["y"])]
    graph = helper.make_graph(nodes, "intbool", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
        helper.make_tensor_value_info("k", TensorProto.INT32, []),
        helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_int32_and_bool_scalars_get_valid_synthetic_values(tmp_path: Path, home) -> None:
    path = _int_bool_model(tmp_path / "intbool.onnx")
    bundle = build_bundle(str(path), FP32_ONLY, None, home)
    art = bundle.manifest["artifacts"][0]
    assert [(i["name"], i["shape"], i["dtype"]) for i in art["inputs"]] == [
        ("x", [1, 4], "float32"), ("k", [], "int32"), ("flag", [], "bool")]
    assert art["verification"]["passed"]
    samples = np.load(bundle.path / "samples.npz")
    assert samples["k"].dtype == np.int32 and samples["flag"].dtype == np.bool_


def test_a_model_refusing_the_inputs_values_is_one_line(tmp_path: Path, home) -> None:
    """A Reshape whose target is an int64 input: the synthetic ones cannot satisfy it."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
        helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "reshape.onnx"))
    with pytest.raises(
            ConfigError, match=r"^reshape.onnx fails on the data's inputs \(.*\); give inputs "
                               r"it accepts with --data") as err:
        build_bundle(str(tmp_path / "reshape.onnx"), FP32_ONLY, None, home)
    assert "\n" not in str(err.value)


def test_the_board_gets_a_few_samples_not_the_evaluation_set(tmp_path: Path) -> None:
    """A landmark-sized input (3×192×192 float32): 32 samples were 14 MB on every release."""
    data = synthetic_dataset({"input": (1, 3, 192, 192)})
    save_board_samples(tmp_path / "samples.npz", data.inputs)
    samples = np.load(tmp_path / "samples.npz")
    assert samples.files == ["input"] and samples["input"].shape == (BOARD_SAMPLES, 3, 192, 192)
    assert BOARD_SAMPLES == 4 and (tmp_path / "samples.npz").stat().st_size < 2_000_000



def test_a_model_refusing_zeros_is_run_on_its_real_data(tmp_path: Path, home) -> None:
    """Output shapes were learnt from an all-zeros run, which a model may refuse (silero VAD's
    sample rate 0: "onnxruntime cannot run silero_vad.onnx"); the first real sample is used."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1)],
                              "reshape", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
        helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "zeros.onnx"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(6, 4)).astype(np.float32),
             shape=np.tile(np.array([2, 2], np.int64), (6, 1)))
    bundle = build_bundle(str(tmp_path / "zeros.onnx"), FP32_ONLY, str(tmp_path / "data.npz"),
                          home)
    [art] = bundle.manifest["artifacts"]
    assert art["verification"]["passed"] and art["outputs"][0]["shape"] == [2, 2]


def _tiny_vad(path: Path) -> Path:
    """x [1, 8] + state [2, 1, 4] (no batch axis) + sr [] int64 → prob [1, 1], next state."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    nodes = [h.make_node("ReduceSum", ["x", "one"], ["xs"], keepdims=1),
             h.make_node("ReduceSum", ["state"], ["ss"], keepdims=0),
             h.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
             h.make_node("Mul", ["srf", "tiny"], ["srs"]),
             h.make_node("Add", ["xs", "ss"], ["t0"]), h.make_node("Add", ["t0", "srs"], ["t1"]),
             h.make_node("Sigmoid", ["t1"], ["prob"]),
             h.make_node("Mul", ["state", "half"], ["kept"]),
             h.make_node("Add", ["kept", "xs"], ["stateN"])]
    graph = h.make_graph(nodes, "tiny_vad", [
        h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
        h.make_tensor_value_info("state", TensorProto.FLOAT, [2, 1, 4]),
        h.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [h.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1]),
         h.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, 1, 4])],
        [nh.from_array(np.array([1], np.int64), "one"), nh.from_array(np.float32(1e-4), "tiny"),
         nh.from_array(np.float32(0.5), "half")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_full_int8_tflite_calibrates_a_state_and_an_int64_input(home, tmp_path: Path) -> None:
    """onnx2tf feeds its calibrator each array sliced along axis 0 and cast to float32: the
    state arrived as ``[1, 2, 128, 1]`` ("reshape.cc:94 num_input_elements !=
    num_output_elements (256 != 128)") and ``sr`` as float ("Got value of type FLOAT32 but
    expected type INT64"), so no full-integer file of Silero VAD could be written. Both are fed
    as the model takes them now, and the int8 file is judged like any other."""
    from profiles.schema import Profile

    profile = Profile.model_validate({"name": "t", "arch": "aarch64", "artifacts": [
        {"format": "tflite", "precision": "fp32"},
        {"format": "tflite", "precision": "int8", "quantization": {"fallback": False}}],
        "budgets": {"max_accuracy_drop": 1.0}, "fidelity": {"min_top1_agreement": 0.0,
                                                           "max_box_error": 1.0}})
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "vad.npz", x=rng.normal(0, 0.3, (24, 8)).astype(np.float32),
             state=rng.normal(0, 0.3, (24, 2, 1, 4)).astype(np.float32),
             sr=np.full(24, 16000, np.int64))
    bundle = build_bundle(str(_tiny_vad(tmp_path / "vad.onnx")), profile, tmp_path / "vad.npz",
                          home)
    assert not bundle.manifest["left_out"], bundle.manifest["left_out"]
    int8 = next(a for a in bundle.manifest["artifacts"] if a["key"] == "tflite-int8")
    assert int8["precision"] == "int8" and "fallback" not in int8
    assert int8["converter"]["variant"] == "full_integer_quant"


def _branchy(path: Path) -> Path:
    """x [1, 8] float, sr [] int64 → x * 2 when sr == 16000, else x * 3 (Silero's If on sr)."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    def branch(name: str, factor: float) -> object:
        return h.make_graph([h.make_node("Mul", ["x", f"{name}_k"], [f"{name}_y"])], name, [],
                            [h.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, 8])],
                            [nh.from_array(np.float32(factor), f"{name}_k")])

    nodes = [h.make_node("Equal", ["sr", "rate"], ["is16k"]),
             h.make_node("If", ["is16k"], ["y"], then_branch=branch("then", 2.0),
                         else_branch=branch("else", 3.0))]
    graph = h.make_graph(nodes, "branchy", [
        h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
        h.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [nh.from_array(np.array(16000, np.int64), "rate")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_an_input_the_graph_branches_on_is_fixed_for_tflite(home, tmp_path: Path) -> None:
    """onnx2tf failed inside Silero VAD's ``If`` on its sample rate; the data holds sr at 16000,
    so the TFLite graph takes that branch for good, and says so: ``fixed_inputs``, no sr input.
    The ONNX artifacts keep the input."""
    import onnx

    from converters.onnx_cleanup import clean_onnx

    src = _branchy(tmp_path / "branchy.onnx")
    done = clean_onnx(src, tmp_path / "clean.onnx", constant_inputs={"sr": 16000},
                      input_shapes={"x": [1, 8]})
    graph = onnx.load(str(tmp_path / "clean.onnx")).graph
    assert [i.name for i in graph.input] == ["x"] and "If" not in done.op_counts
    assert done.fixed_inputs == {"sr": 16000}
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(24, 8)).astype(np.float32),
             sr=np.full(24, 16000, np.int64))
    profile = load_profile("sim").model_copy(update={"artifacts": [
        a for a in load_profile("sim").artifacts if a.precision == "fp32"]})
    bundle = build_bundle(str(src), profile, tmp_path / "d.npz", home)
    arts = {a["key"]: a for a in bundle.manifest["artifacts"]}
    assert set(arts) == {"onnx-fp32", "tflite-fp32"}, bundle.manifest["left_out"]
    tfl = arts["tflite-fp32"]
    assert tfl["converter"]["fixed_inputs"] == {"sr": 16000}
    assert [i["source_name"] for i in tfl["inputs"]] == ["x"]
    assert tfl["verification"]["passed"] and tfl["verification"]["max_abs_drift"] < 1e-5
    assert [i["name"] for i in arts["onnx-fp32"]["inputs"]] == ["x", "sr"]
