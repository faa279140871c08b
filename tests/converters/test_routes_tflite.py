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
from edgeship.errors import ConversionError


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
