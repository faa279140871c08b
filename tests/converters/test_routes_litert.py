"""The litert-torch route (PyTorch → TFLite without ONNX) on the seeded tiny CNN, in its own
environment. Slow: the environment is created on first use (~6 min, ~2 GB) and one conversion
of fp32 + int8 takes ~50 s here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.export_litert import export_tflite_torch, litert_env_dir
from core.errors import ConversionError


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for i in range(len(x)):
        v = x[i:i + 1].transpose(0, 2, 3, 1)  # channels-last, as onnx2tf's files
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            v = np.clip(np.round(v / scale + zero), -128, 127).astype(inp["dtype"])
        interp.set_tensor(inp["index"], np.ascontiguousarray(v))
        interp.invoke()
        r = interp.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            r = (r - zero) * scale
        outs.append(r)
    return np.concatenate(outs)


def test_unsupported_precision_is_refused_before_any_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESHIP_LITERT_VENV", str(tmp_path / "venv"))
    with pytest.raises(ConversionError, match="cannot make fp16") as err:
        export_tflite_torch(object(), tmp_path, ["fp16"], {"x": np.zeros((1, 2), np.float32)})
    assert err.value.tool == "litert-torch" and not litert_env_dir().exists()


@pytest.mark.slow
def test_litert_torch_fp32_is_exact_and_int8_agrees(tmp_path: Path, tiny) -> None:
    import torch

    data = np.load(tiny.data)
    x, calib = data["image"][:64], data["calibration.image"][:32]
    with torch.no_grad():
        ref = tiny.module(torch.from_numpy(x)).numpy()
    infos = export_tflite_torch(tiny.module, tmp_path, ["fp32", "int8"], {"input": calib})
    assert infos["fp32"]["route"] == ["torch.export", "litert-torch"]
    drift = np.abs(_run(tmp_path / "model.fp32.tflite", x) - ref).max()
    assert drift <= 1e-6 * np.abs(ref).max(), f"fp32 drift {drift:.3g}"  # float32 rounding
    int8 = _run(tmp_path / "model.int8.tflite", x)
    assert infos["int8"]["io"] == "int8" and infos["int8"]["calibration_samples"] == 32
    assert (int8.argmax(1) == ref.argmax(1)).mean() >= 0.95


def test_integer_calibration_inputs_keep_their_dtype(tmp_path: Path) -> None:
    """Token ids calibrate the PT2E int8 as integers: as float32 they reached the embedding as
    floats and the route failed (found by bench/peers.py on MiniLM)."""
    import torch

    from converters.export_litert import _write_request

    class Bag(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(16, 4)

        def forward(self, ids: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return self.emb(ids).mean(1) * scale

    ids = np.arange(12, dtype=np.int64).reshape(3, 4) % 16
    scale = np.ones((3, 1), dtype=np.float64)
    _write_request(tmp_path, Bag(), tmp_path, ["int8"], {"ids": ids, "scale": scale}, True)
    assert np.load(tmp_path / "calib_0.npy").dtype == np.int64
    assert np.load(tmp_path / "calib_1.npy").dtype == np.float32
