"""The artifacts themselves: ONNX fp32 == torch, int8 QDQ, TFLite NHWC / int8 I/O."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from converters import export_onnx, export_tflite, load_model
from core.errors import ConversionError


def _eval(tiny) -> np.ndarray:
    return np.load(tiny.data)["image"]


def test_onnx_fp32_matches_torch(sim_bundle, tiny) -> None:
    import onnxruntime as ort
    import torch

    bundle, _ = sim_bundle
    session = ort.InferenceSession(str(bundle.path / "model.fp32.onnx"),
                                   providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [[1, 1, 28, 28]]  # static batch 1
    x = _eval(tiny)[:20]
    with torch.no_grad():
        want = tiny.module(torch.from_numpy(x)).numpy()
    got = np.concatenate([session.run(["logits"], {"input": x[i:i + 1]})[0] for i in range(20)])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    art = bundle.manifest["artifacts"][0]
    assert art["converter"] == {"tool": "torch.onnx", "method": "dynamo", "opset": 18}


def test_int8_onnx_is_qdq_and_passes(sim_bundle) -> None:
    import onnx

    bundle, _ = sim_bundle
    ops = {n.op_type for n in onnx.load(str(bundle.path / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    art = next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-int8")
    # the sim board is x86-64: uint8 activations × int8 weights, onnxruntime's fast path there
    assert art["verification"]["passed"] and art["converter"]["activations"] == "QUInt8"
    assert art["size_bytes"] < bundle.manifest["files"]["model.fp32.onnx"]["size_bytes"]


def test_tflite_artifacts_run_nhwc(sim_bundle, tiny) -> None:
    from ai_edge_litert.interpreter import Interpreter

    bundle, _ = sim_bundle
    for precision, dtype in (("fp32", np.float32), ("int8", np.int8)):
        it = Interpreter(model_path=str(bundle.path / f"model.{precision}.tflite"))
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        assert list(inp["shape"]) == [1, 28, 28, 1] and inp["dtype"] == dtype
        assert out["dtype"] == dtype and list(out["shape"]) == [1, 10]
        x = _eval(tiny)[:1].transpose(0, 2, 3, 1)
        if dtype == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], x)
        it.invoke()
        assert it.get_tensor(out["index"]).shape == (1, 10)
        art = next(a for a in bundle.manifest["artifacts"] if a["key"] == f"tflite-{precision}")
        assert art["inputs"][0]["transpose"] == [0, 2, 3, 1]
        assert art["inputs"][0]["layout"] == "NHWC" and art["inputs"][0]["source_name"] == "input"
        assert art["inputs"][0]["dtype"] == np.dtype(dtype).name
        assert art["verification"]["passed"]


def test_manifest_records_the_routes(sim_bundle) -> None:
    """Clean-up steps and the onnx2tf call of each TFLite file, the int8 variant taken."""
    bundle, _ = sim_bundle
    arts = {a["key"]: a["converter"] for a in bundle.manifest["artifacts"]}
    assert arts["tflite-fp32"]["route"][-1] == "onnx2tf (float call)"
    assert arts["tflite-int8"]["route"][-1] == "onnx2tf (int8 call)"
    assert [s["step"] for s in arts["tflite-fp32"]["cleanup"]] == ["onnxslim", "names"]
    assert arts["onnx-int8"]["variant"] == "as configured" and arts["onnx-int8"]["tried"] == []


def test_dynamo_failure_falls_back_to_torchscript(tmp_path: Path, factory_source: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module("converters.export_onnx")  # the package re-exports a function
    real = mod._export

    def no_dynamo(*args, dynamo: bool, **kwargs):
        if dynamo:
            raise RuntimeError("simulated dynamo failure")
        return real(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(mod, "_export", no_dynamo)
    info = export_onnx(load_model(factory_source), {"input": np.zeros((1, 1, 28, 28), np.float32)},
                       tmp_path / "m.onnx", 18, ["logits"])
    assert info["method"] == "torchscript" and info["opset"] == 17
    assert "simulated dynamo failure" in info["dynamo_error"]
    assert (tmp_path / "m.onnx").stat().st_size > 1000


def test_tflite_three_channel_needs_no_download(tmp_path: Path) -> None:
    """onnx2tf fetches sample images for 3-channel inputs; ours must use local data (no network)."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 14 * 14, 5)).eval()
    onnx_path = tmp_path / "rgb.onnx"
    export_onnx(_Loaded(model), {"input": np.zeros((1, 3, 16, 16), np.float32)}, onnx_path, 18,
                ["logits"])
    calib = {"input": np.random.default_rng(0).random((8, 3, 16, 16), dtype=np.float32)}
    infos = export_tflite(onnx_path, tmp_path, ["fp32"], calib)
    assert (tmp_path / "model.fp32.tflite").exists() and infos["fp32"]["variant"] == "float32"


def test_tflite_failure_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ConversionError, match=r"^TFLite export failed: .+; check the ONNX") as err:
        export_tflite(bad, tmp_path, ["fp32"], {"input": np.zeros((2, 1, 4, 4), np.float32)})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "model.fp32.tflite").exists()


class _Loaded:
    """A minimal torch LoadedModel stand-in."""

    is_torch = True
    ref = "test"

    def __init__(self, model: object) -> None:
        self.model = model
