"""ONNX fp32 → static int8 (QDQ, per-channel) and fp16, with onnxruntime's own tools.

int8 is calibrated on real samples (``quantize_static`` + a :class:`CalibrationDataReader`
feeding one sample at a time); the model is pre-processed first (shape inference + graph
optimisation, ``quant_pre_process``) so the quantizer sees fused Conv/Gemm nodes. fp16 uses
``onnxruntime.transformers.float16`` with float32 inputs/outputs kept (``keep_io_types``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import ConversionError

from ._util import one_line

__all__ = ["ACTIVATION_TYPE", "convert_fp16", "quantize_int8"]

log = logging.getLogger(__name__)

ACTIVATION_TYPE = "QInt8"
"""Activation type of the QDQ int8 artifact. Measured on the demo CNN: QInt8 and QUInt8 gave the
same accuracy; QInt8 (S8S8) is onnxruntime's recommended QDQ default and the fast path on ARM64
boards, so it is used."""


def quantize_int8(fp32: Path, out: Path, calibration: dict[str, np.ndarray],
                  activation_type: str = ACTIVATION_TYPE) -> dict[str, Any]:
    """Write a static int8 QDQ model of *fp32* to *out*; return how it was made."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    n = len(next(iter(calibration.values())))
    with tempfile.TemporaryDirectory(prefix="edgeship-q-") as tmp:
        source = _preprocess(fp32, Path(tmp) / "pre.onnx")
        try:
            quantize_static(str(source), str(out), _Reader(calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8,
                            activation_type=getattr(QuantType, activation_type))
        except Exception as exc:  # onnxruntime raises many types for unsupported graphs
            raise ConversionError(f"ONNX int8 quantization failed: {one_line(exc)}; drop "
                                  "onnx-int8 from the profile or try fp16") from exc
    log.info("quantized %s -> %s (%d calibration samples)", fp32.name, out.name, n)
    return {"tool": "onnxruntime.quantization", "method": "quantize_static QDQ per-channel",
            "weights": "QInt8", "activations": activation_type, "calibration_samples": n,
            "preprocessed": source != fp32}


def convert_fp16(fp32: Path, out: Path) -> dict[str, Any]:
    """Write an fp16 copy of *fp32* (float32 I/O kept) to *out*; return how it was made."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
        onnx.save(model, str(out))
    except Exception as exc:  # converter/ protobuf errors
        raise ConversionError(f"ONNX fp16 conversion failed: {one_line(exc)}; "
                              "drop onnx-fp16 from the profile") from exc
    return {"tool": "onnxruntime.transformers.float16", "method": "convert_float_to_float16",
            "keep_io_types": True}


class _Reader:
    """Calibration samples, one batch-1 feed at a time (onnxruntime's CalibrationDataReader)."""

    def __init__(self, calibration: dict[str, np.ndarray]) -> None:
        self._feeds = self._iter(calibration)

    @staticmethod
    def _iter(calibration: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        n = len(next(iter(calibration.values())))
        for i in range(n):
            yield {k: np.ascontiguousarray(v[i:i + 1]) for k, v in calibration.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed, or ``None`` when done."""
        return next(self._feeds, None)


def _preprocess(fp32: Path, out: Path) -> Path:
    from onnxruntime.quantization import quant_pre_process

    try:
        quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
        return out
    except Exception as exc:  # optional step: quantize the raw model instead
        log.warning("quant_pre_process failed (%s); quantizing the model as exported", one_line(exc))
        return fp32

