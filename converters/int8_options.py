"""Which int8 settings an artifact is made with: the profile's ``quantization`` resolved for the
board (the CPU's fast onnxruntime kernel) and the runner (TensorRT's rules), and the option set
:class:`converters.quantize_onnx.OnnxQuantizer` takes (:class:`OnnxQuantOptions`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["ACTIVATION_QTYPES", "CALIBRATION_METHODS", "OnnxQuantOptions", "artifact_quantization",
           "int8_quantization", "with_arch_default"]

ACTIVATION_QTYPES = {"int8": "QInt8", "uint8": "QUInt8", "int16": "QInt16"}
"""onnxruntime QuantType per activation type; ``int16`` (weights stay int8) is a remedy, not a profile choice."""
CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
"""onnxruntime CalibrationMethod per profile ``calibration``."""


@dataclass(frozen=True)
class OnnxQuantOptions:
    """Resolved ONNX int8 options (the profile's ``quantization`` with defaults filled in)."""

    mode: str = "static"
    per_channel: bool = True
    calibration: str = "minmax"
    percentile: float = 99.999
    activations: str = "int8"
    symmetric: bool = False
    """int8 activations with zero point 0 (``ActivationSymmetric``; TensorRT's rule)."""
    exclude: tuple[str, ...] = ()
    op_types: tuple[str, ...] = ()
    """Quantize only nodes of these types (empty: every type onnxruntime quantizes)."""
    format: str = "QDQ"
    """``QDQ`` (Quantize/DequantizeLinear pairs) or ``QOperator`` (QLinearConv, …)."""
    subgraphs: bool = False
    """Quantize inside If/Loop/Scan subgraphs too (dynamic mode only; ``EnableSubgraph``)."""

    @classmethod
    def from_profile(cls, q: Any) -> OnnxQuantOptions:
        """From a ``profiles.Quantization`` (or ``None``); ``exclude: auto`` is resolved later."""
        if q is None:
            return cls()
        static = q.mode == "static"
        return cls(mode=q.mode, per_channel=q.per_channel,
                   calibration=(q.calibration or "minmax") if static else "none",
                   percentile=q.percentile, activations=(q.activations or "int8") if static else
                   "dynamic", symmetric=bool(getattr(q, "symmetric", False)) and static,
                   exclude=() if q.exclude == "auto" else tuple(q.exclude))

    def with_(self, **changes: Any) -> OnnxQuantOptions:
        """A copy with *changes*."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The manifest form (``list`` for ``exclude``)."""
        d = asdict(self)
        d["exclude"] = list(self.exclude)
        if self.calibration != "percentile":
            d.pop("percentile")
        if not self.subgraphs:
            d.pop("subgraphs")
        if not self.symmetric:
            d.pop("symmetric")
        if self.op_types:
            d["op_types"] = list(self.op_types)
        else:
            d.pop("op_types")
        return d


def int8_quantization(profile: Any, fmt: str) -> Any:
    """The ``quantization`` options of the profile's *fmt* int8 artifact, with the activation
    type for the profile's CPU filled in (:func:`with_arch_default`; ``None``: defaults)."""
    art = next((a for a in profile.artifacts if a.format == fmt and a.precision == "int8"), None)
    return artifact_quantization(art, profile.arch) if art is not None else \
        with_arch_default(None, fmt, profile.arch)


def artifact_quantization(artifact: Any, arch: str | None) -> Any:
    """An int8 artifact's ``quantization`` as it is made: a TensorRT artifact's activations are
    symmetric int8 (TensorRT refuses other Q/DQ), others get :func:`with_arch_default`."""
    q = artifact.quantization
    if getattr(artifact, "runner", "auto") == "tensorrt":
        from profiles.schema import Quantization

        return (q or Quantization()).model_copy(update={"activations": "int8",
                                                        "symmetric": True})
    return with_arch_default(q, artifact.format, arch)


def with_arch_default(quantization: Any, fmt: str, arch: str | None) -> Any:
    """ONNX static int8 without an ``activations`` choice gets the one onnxruntime runs fastest on
    the board's CPU: uint8 activations × int8 weights (U8S8) on x86-64, whose int8 GEMM kernels
    take unsigned activations (VPMADDUBSW), int8 × int8 (S8S8) on ARM. Measured on this x86 host
    (bench/peers.py, EfficientNet-Lite0): S8S8 QDQ 1.10× fp32 latency, U8S8 0.68×."""
    if fmt != "onnx" or arch is None:
        return quantization
    from profiles.schema import Quantization

    q = quantization if quantization is not None else Quantization()
    if q.mode != "static" or q.activations is not None:
        return quantization
    return q.model_copy(update={"activations": "uint8" if arch == "x86_64" else "int8"})