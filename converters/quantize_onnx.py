"""ONNX fp32 → int8 (static QDQ or dynamic) and fp16, with onnxruntime's own tools.

:class:`OnnxQuantizer` pre-processes the fp32 model once (shape inference + graph optimisation,
``quant_pre_process``, so the quantizer sees fused Conv/Gemm nodes) and then quantizes it as often
as asked with different :class:`OnnxQuantOptions` — the fallbacks and the sensitivity measurement
re-quantize the same graph. Static int8 is calibrated on real samples (``quantize_static`` + a
:class:`CalibrationDataReader` feeding one sample at a time); the calibrated tensor ranges are
cached per calibration method, so a re-quantization does not calibrate again. Dynamic int8 uses
``quantize_dynamic`` (int8 weights, activations quantized at run time). fp16 uses
``onnxruntime.transformers.float16`` with float32 inputs/outputs kept (``keep_io_types``).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import ConversionError

from ._util import one_line

__all__ = ["ACTIVATION_TYPE", "WEIGHT_OPS", "OnnxQuantOptions", "OnnxQuantizer", "convert_fp16",
           "quantize_int8"]

log = logging.getLogger(__name__)

ACTIVATION_TYPE = "QInt8"
"""Default activation type of the QDQ int8 artifact. Measured on the demo CNN: QInt8 and QUInt8
gave the same accuracy; QInt8 (S8S8) is onnxruntime's recommended QDQ default and the fast path on
ARM64 boards, so it is used."""
WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Attention", "LSTM", "GRU")
"""Node types the sensitivity measurement (and ``exclude: auto``) considers: those with weights."""
_QTYPES = {"int8": "QInt8", "uint8": "QUInt8"}
_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@dataclass(frozen=True)
class OnnxQuantOptions:
    """Resolved ONNX int8 options (the profile's ``quantization`` with defaults filled in)."""

    mode: str = "static"
    per_channel: bool = True
    calibration: str = "minmax"
    percentile: float = 99.999
    activations: str = "int8"
    exclude: tuple[str, ...] = ()

    @classmethod
    def from_profile(cls, q: Any) -> OnnxQuantOptions:
        """From a ``profiles.Quantization`` (or ``None``); ``exclude: auto`` is resolved later."""
        if q is None:
            return cls()
        static = q.mode == "static"
        return cls(mode=q.mode, per_channel=q.per_channel,
                   calibration=(q.calibration or "minmax") if static else "none",
                   percentile=q.percentile, activations=(q.activations or "int8") if static else
                   "dynamic", exclude=() if q.exclude == "auto" else tuple(q.exclude))

    def with_(self, **changes: Any) -> OnnxQuantOptions:
        """A copy with *changes*."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The manifest form (``list`` for ``exclude``)."""
        d = asdict(self)
        d["exclude"] = list(self.exclude)
        if self.calibration != "percentile":
            d.pop("percentile")
        return d


class OnnxQuantizer:
    """Quantize one fp32 ONNX model repeatedly; temp files live in *workdir*."""

    def __init__(self, fp32: Path, calibration: dict[str, np.ndarray], workdir: Path) -> None:
        self.fp32, self.calibration, self.workdir = fp32, calibration, workdir
        self.source = _preprocess(fp32, workdir / "pre.onnx")
        self.samples = len(next(iter(calibration.values())))

    def weight_nodes(self) -> list[str]:
        """Names of the nodes with weights, in graph order (candidates to keep in float)."""
        import onnx

        graph = onnx.load(str(self.source)).graph
        return [n.name for n in graph.node if n.op_type in WEIGHT_OPS and n.name]

    def quantize(self, options: OnnxQuantOptions, out: Path,
                 only: list[str] | None = None) -> dict[str, Any]:
        """Write the int8 model to *out* (only the nodes *only*, when given); return how."""
        try:
            if options.mode == "dynamic":
                self._dynamic(options, out, only)
            else:
                self._static(options, out, only)
        except Exception as exc:  # onnxruntime raises many types for unsupported graphs
            raise ConversionError(f"ONNX int8 quantization failed{_op_hint(exc, self.source)}: "
                                  f"{one_line(exc)}; drop onnx-int8 from the profile or use "
                                  "precision fp16") from exc
        method = ("quantize_dynamic" if options.mode == "dynamic" else "quantize_static QDQ") + (
            " per-channel" if options.per_channel else " per-tensor")
        return {"tool": "onnxruntime.quantization", "method": method, "weights": "QInt8",
                "activations": _QTYPES.get(options.activations, options.activations),
                "calibration_samples": self.samples if options.mode == "static" else 0,
                "preprocessed": self.source != self.fp32, "options": options.to_dict()}

    def _static(self, options: OnnxQuantOptions, out: Path, only: list[str] | None) -> None:
        from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)

        percentile = options.calibration == "percentile"
        extra = {"CalibPercentile": options.percentile} if percentile else {}
        cache = self.workdir / f"calib-{options.calibration}-{options.percentile}.json"
        quantize_static(str(self.source), str(out), _Reader(self.calibration, self.source),
                        quant_format=QuantFormat.QDQ, per_channel=options.per_channel,
                        weight_type=QuantType.QInt8,
                        activation_type=getattr(QuantType, _QTYPES[options.activations]),
                        calibrate_method=getattr(CalibrationMethod, _METHODS[options.calibration]),
                        nodes_to_exclude=list(options.exclude) or None, nodes_to_quantize=only,
                        extra_options=extra, calibration_cache_path=str(cache))

    def _dynamic(self, options: OnnxQuantOptions, out: Path, only: list[str] | None) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(self._without_value_info()), str(out), per_channel=options.per_channel,
                         weight_type=QuantType.QInt8,
                         nodes_to_exclude=list(options.exclude) or None,
                         nodes_to_quantize=only)


    def _without_value_info(self) -> Path:
        """The source without intermediate shapes: ``quantize_dynamic`` turns ``Gemm(transB=1)``
        into ``MatMulInteger`` and then trips over the stale shapes (measured: ORT 1.31)."""
        import onnx

        path = self.workdir / "pre-dynamic.onnx"
        if not path.exists():
            model = onnx.load(str(self.source))
            del model.graph.value_info[:]
            onnx.save(model, str(path))
        return path


def quantize_int8(fp32: Path, out: Path, calibration: dict[str, np.ndarray],
                  options: OnnxQuantOptions | None = None) -> dict[str, Any]:
    """Write an int8 model of *fp32* to *out* (static QDQ per-channel by default); return how."""
    with tempfile.TemporaryDirectory(prefix="edgeship-q-") as tmp:
        quantizer = OnnxQuantizer(fp32, calibration, Path(tmp))
        info = quantizer.quantize(options or OnnxQuantOptions(), out)
    log.info("quantized %s -> %s (%s)", fp32.name, out.name, info["method"])
    return info


def convert_fp16(fp32: Path, out: Path) -> dict[str, Any]:
    """Write an fp16 copy of *fp32* (float32 I/O kept) to *out*; return how it was made."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
        onnx.save(model, str(out))
    except Exception as exc:  # converter/ protobuf errors
        raise ConversionError(f"ONNX fp16 conversion failed{_op_hint(exc, fp32)}: "
                              f"{one_line(exc)}; drop onnx-fp16 from the profile") from exc
    return {"tool": "onnxruntime.transformers.float16", "method": "convert_float_to_float16",
            "keep_io_types": True}


class _Reader:
    """Calibration samples, one feed at a time as the model declares its inputs
    (:func:`converters.feeds.sample_feed`; onnxruntime's CalibrationDataReader)."""

    def __init__(self, calibration: dict[str, np.ndarray], model: Path) -> None:
        from ._shapes import onnx_input_shapes

        self._feeds = self._iter(calibration, onnx_input_shapes(model))

    @staticmethod
    def _iter(calibration: dict[str, np.ndarray],
              shapes: dict[str, tuple[int, ...]]) -> Iterator[dict[str, np.ndarray]]:
        from .feeds import sample_feed

        n = len(next(iter(calibration.values())))
        for i in range(n):
            yield sample_feed(calibration, i, shapes)

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


def _op_hint(exc: BaseException, model_path: Path) -> str:
    """`` at node N (op T)`` when the error names a node or op type of the model, else ``""``."""
    try:
        import onnx

        nodes = onnx.load(str(model_path), load_external_data=False).graph.node
    except Exception:  # the hint is best effort; the error itself is raised by the caller
        return ""
    text = str(exc)
    for node in nodes:
        if node.name and re.search(rf"\b{re.escape(node.name)}\b", text):
            return f" at node {node.name} (op {node.op_type})"
    ops = sorted({n.op_type for n in nodes if re.search(rf"\b{n.op_type}\b", text)})
    return f" (op {', '.join(ops)})" if ops else ""
