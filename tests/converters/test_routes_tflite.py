"""The ONNX → TFLite route on graphs that broke it on real models (real onnx2tf, real
interpreter): names with ``@``, fp32 drift when int8 is made too, onnx2tf's real cause.

Three converter runs (~10–25 s each here, tensorflow's import dominates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from route_models import conv_pool, nhwc_mismatch

from converters.export_tflite import export_tflite
from core.errors import ConversionError


def _samples(n: int = 16) -> np.ndarray:
    return np.random.default_rng(1).normal(0, 1, (n, 3, 16, 16)).astype(np.float32)


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])


def _tflite(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.float32, "an fp32 file takes float input"
    outs = []
    for i in range(len(x)):
        interp.set_tensor(inp["index"], np.ascontiguousarray(x[i:i + 1].transpose(0, 2, 3, 1)))
        interp.invoke()
        outs.append(interp.get_tensor(out["index"]).copy())
    return np.concatenate(outs)


def test_names_with_at_sign_convert(tmp_path: Path) -> None:
    """onnx2tf refuses ``Softmax@0`` as a scope name; the clean-up renames it first."""
    src = conv_pool(tmp_path / "at.onnx", suffix="@0")
    x = _samples()
    infos = export_tflite(src, tmp_path, ["fp32"], {"x": x})
    names = next(s for s in infos["fp32"]["cleanup"] if s["step"] == "names")
    assert names["changed"] and names["nodes"] == 5
    assert "names" in infos["fp32"]["route"] and infos["fp32"]["route"][-1].startswith("onnx2tf")
    assert np.abs(_tflite(tmp_path / "model.fp32.tflite", x) - _ort(src, x)).max() <= 1e-5


def test_fp32_is_exact_when_int8_is_made_too(tmp_path: Path) -> None:
    """fp32 and int8 from one export call: the fp32 file is still fp32-exact (one onnx2tf call
    each; in a shared call onnx2tf padded the MaxPool with 0 and drifted the fp32 file)."""
    src = conv_pool(tmp_path / "pool.onnx")
    x = _samples()
    infos = export_tflite(src, tmp_path, ["fp32", "int8"], {"x": x})
    drift = np.abs(_tflite(tmp_path / "model.fp32.tflite", x) - _ort(src, x)).max()
    assert drift <= 1e-5, f"fp32 drifted {drift:.3g} from onnxruntime"
    assert (tmp_path / "model.int8.tflite").stat().st_size > 0
    assert infos["fp32"]["route"][-1] == "onnx2tf (float call)"
    assert infos["int8"]["route"][-1] == "onnx2tf (int8 call)"


def test_onnx2tf_failure_gives_its_real_cause(tmp_path: Path) -> None:
    src = nhwc_mismatch(tmp_path / "mul.onnx")
    calib = {"x": np.ones((2, 4, 40, 120), np.float32), "z": np.ones((2, 40, 120), np.float32)}
    with pytest.raises(ConversionError) as err:
        export_tflite(src, tmp_path, ["fp32"], calib)
    exc = err.value
    assert exc.tool == "onnx2tf" and exc.stage == "convert"
    assert exc.cause.startswith("Dimensions must be equal, but are 40 and 120"), exc.cause
    assert "p2o.Mul.178" in exc.cause and exc.cause in str(exc)
    for noise in ("Traceback", "Exception encountered", "Call arguments", "-onwdt", "-kt",
                  "Alternatively"):
        assert noise not in str(exc)
    assert "\n" not in str(exc) and not (tmp_path / "model.fp32.tflite").exists()


def _mul_module() -> object:
    """x * z as a torch module (torch imported only by the test that needs it)."""
    import torch

    class Mul(torch.nn.Module):
        def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return x * z

    return Mul().eval()


def _mismatch_calib() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(4, 4, 40, 120)).astype(np.float32),
            "z": rng.normal(size=(4, 40, 120)).astype(np.float32)}


def test_routes_record_onnx2tf_failure_and_litert_taken(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The route logic alone (both converters stubbed): onnx2tf's error, then litert-torch."""
    import converters.tflite_routes as routes

    error = ConversionError("TFLite export failed: onnx2tf (fp32): boom; hint", stage="convert",
                            tool="onnx2tf", cause="boom")
    monkeypatch.setattr(routes, "export_tflite_each",
                        lambda *a, **k: {"fp32": error, "fp16": error})
    monkeypatch.setattr(routes.export_litert, "litert_env_ready", lambda: True)
    monkeypatch.setattr(routes.export_litert, "export_tflite_torch_each",
                        lambda model, out, precisions, *a, **k: {
                            p: {"tool": "litert-torch", "route": ["torch.export", "litert-torch"]}
                            for p in precisions})
    made = routes.make_tflite(conv_pool(tmp_path / "m.onnx"), tmp_path, ["fp32", "fp16"], {},
                              torch_model=object())
    assert made["fp32"]["io_names"] == {"inputs": {"args_0": "x"},
                                        "outputs": {"output_0": "probs"}}
    assert made["fp32"]["tool"] == "litert-torch"
    assert made["fp32"]["tried"] == [{"route": "onnx2tf", "error": "boom"}]
    fp16 = made["fp16"]
    assert isinstance(fp16, ConversionError) and fp16.tried == ["onnx2tf"]
    assert "litert-torch skipped: litert-torch makes fp32 and int8, not fp16" in str(fp16)


def test_not_a_torch_source_keeps_the_onnx2tf_error(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import converters.tflite_routes as routes

    error = ConversionError("TFLite export failed: onnx2tf (int8): boom; hint", cause="boom")
    monkeypatch.setattr(routes, "export_tflite_each", lambda *a, **k: {"int8": error})
    made = routes.make_tflite(tmp_path / "m.onnx", tmp_path, ["int8"], {})
    assert made["int8"].cause == "boom" and "not a PyTorch model" in str(made["int8"])


@pytest.mark.slow
def test_litert_torch_makes_what_onnx2tf_cannot(tmp_path: Path) -> None:
    """Real converters: onnx2tf fails on x[1,4,40,120] * z[1,40,120]; litert-torch converts the
    same torch module, fp32-exact, fed channels-last like onnx2tf's files."""
    import torch
    from ai_edge_litert.interpreter import Interpreter

    from converters.tflite_routes import make_tflite

    src, calib, module = nhwc_mismatch(tmp_path / "mul.onnx"), _mismatch_calib(), _mul_module()
    made = make_tflite(src, tmp_path, ["fp32"], calib, torch_model=module, install_litert=True)
    info = made["fp32"]
    assert info["tool"] == "litert-torch"
    assert info["tried"][0]["error"].startswith("Dimensions must be equal")
    assert info["io_names"]["inputs"] == {"args_0": "x", "args_1": "z"}
    interp = Interpreter(model_path=str(tmp_path / "model.fp32.tflite"))
    interp.allocate_tensors()
    feeds = {"x": calib["x"][:1].transpose(0, 2, 3, 1), "z": calib["z"][:1].transpose(0, 2, 1)}
    runner = interp.get_signature_runner()
    (got,) = runner(args_0=feeds["x"], args_1=feeds["z"]).values()
    want = module(torch.from_numpy(calib["x"][:1]), torch.from_numpy(calib["z"][:1])).numpy()
    np.testing.assert_allclose(got, want.transpose(0, 2, 3, 1), atol=1e-6)
