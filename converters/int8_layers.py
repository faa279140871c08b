"""int8 with Q/DQ at the weight layers only, all of their types or all but one.

The ``weight-ops-only`` and ``keep-float-<type>`` remedies of :mod:`converters.fallback`:
adds, activations, pooling, normalisation and embedding lookups stay float, and with
``keep-float-<type>`` one minority layer type too (:func:`float_type_splits`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from .int8_options import OnnxQuantOptions
from .quantize_onnx import OnnxQuantizer

__all__ = ["LAYER_OPS", "LayerQuantizer", "float_type_splits"]


LAYER_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
"""The weight layers of the weight-ops-only placement."""


class LayerQuantizer:
    """Q/DQ at the inputs of the weight layers only (Conv, ConvTranspose, MatMul, Gemm); adds,
    activations, pooling, normalisation and the embedding lookups stay float — TensorRT's
    recommended Q/DQ placement, so also a remedy for ``runner: tensorrt``. Measured on
    PP-OCRv4's text recogniser (mean cosine of its output): zero-point-0 int8 0.933 → 0.953,
    onnxruntime's default placement 0.961 → 0.974. With a subset of the types: the
    ``keep-float-<type>`` remedy (:func:`float_type_splits`). One quantizer (pre-processed
    graph, calibrated ranges) serves them all."""

    def __init__(self, fp32: Path, calibration: dict[str, np.ndarray], quantization: Any,
                 tmp: Path) -> None:
        self.fp32, self.calibration, self.quantization = fp32, calibration, quantization
        self.dir = tmp / "weight-ops"
        self._quantizer: OnnxQuantizer | None = None

    def quantizer(self) -> OnnxQuantizer:
        """The quantizer of the job's fp32 model (made once)."""
        if self._quantizer is None:
            self.dir.mkdir(exist_ok=True)
            self._quantizer = OnnxQuantizer(self.fp32, self.calibration, self.dir)
        return self._quantizer

    def type_splits(self) -> list[tuple[str, tuple[str, ...]]]:
        """:func:`float_type_splits` of the quantizer's graph (none when it cannot be made:
        the weight-ops-only remedy recorded why)."""
        try:
            return float_type_splits(self.quantizer().source)
        except ConversionError:
            return []

    def quantize(self, out: Path, op_types: tuple[str, ...] = LAYER_OPS) -> dict[str, Any]:
        """int8 with Q/DQ at the layers of *op_types* only, written to *out*."""
        options = OnnxQuantOptions.from_profile(self.quantization).with_(
            per_channel=True, op_types=op_types)
        return self.quantizer().quantize(options, out)


def float_type_splits(source: Path) -> list[tuple[str, tuple[str, ...]]]:
    """``(type kept float, types quantized)`` for each weight-layer type of the graph that is at
    most half of its weight layers, fewest first: the ``keep-float-<type>`` remedies.

    An activation outlier that every layer of one type reads defeats keep-float-N, which keeps
    the layers that hurt most *alone*: measured on all-MiniLM-L6-v2 (onnxruntime fuses its
    feed-forward MatMul + Add into 12 Gemm beside 36 MatMul), each Gemm alone moves
    the embedding little, all of them together drop its cosine to 0.94 (zero point 0: 0.02,
    with keep-float-1…8 and weight-ops-only failing too); MatMul-only int8 gives 0.996 (0.994
    zero-point-0). A type that is the majority is not kept float: the artifact would be int8
    in name only. The types are counted in the graph the quantizer sees (after onnxruntime's
    pre-processing, which makes the Gemm nodes: *source*)."""
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    counts = {t: sum(n.op_type == t for n in graph.node) for t in LAYER_OPS}
    present = {t: c for t, c in counts.items() if c}
    total = sum(present.values())
    if len(present) < 2:
        return []
    return [(t, tuple(o for o in present if o != t))
            for t, c in sorted(present.items(), key=lambda tc: tc[1]) if 2 * c <= total]
