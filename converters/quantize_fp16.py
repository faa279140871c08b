"""ONNX fp32 → fp16 (float32 I/O kept), with nodes that read constants beyond fp16's range kept
in float32. The int8 side of ONNX quantization is :mod:`converters.quantize_onnx`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import ConversionError

from ._util import one_line, op_hint
from .steps import timed

__all__ = ["FP16_MAX", "convert_fp16"]

log = logging.getLogger(__name__)

FP16_MAX = 65504.0
"""The largest finite float16: a float constant beyond it cannot be stored in fp16."""


@timed("convert", "onnx-fp16")
def convert_fp16(fp32: Path, out: Path) -> dict[str, Any]:
    """Write an fp16 copy of *fp32* (float32 I/O kept) to *out*; return how it was made.

    Nodes that read a float constant beyond fp16's range (a BatchNorm variance of 1e8 in a real
    OCR detector) stay in float32 rather than have the constant clamped; ``kept_float`` names
    them. Activations that overflow fp16 are not caught here (that detector still fails its
    fp16 gate: the verification says so).
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = onnx.load(str(fp32))
        keep = _fp16_unsafe_nodes(model)
        model = convert_float_to_float16(model, keep_io_types=True, max_finite_val=FP16_MAX,
                                         node_block_list=keep or None)
        onnx.save(model, str(out))
    except Exception as exc:  # converter/ protobuf errors
        raise ConversionError(f"ONNX fp16 conversion failed{op_hint(exc, fp32)}: "
                              f"{one_line(exc)}; drop onnx-fp16 from the profile") from exc
    return {"tool": "onnxruntime.transformers.float16", "method": "convert_float_to_float16",
            "keep_io_types": True, "kept_float": keep}


def _fp16_unsafe_nodes(model: Any) -> list[str]:
    """Names of the nodes reading a float initializer or Constant beyond :data:`FP16_MAX`
    (unnamed ones are given a name so the converter can keep them in float32)."""
    from onnx import TensorProto, numpy_helper

    def too_big(tensor: Any) -> bool:
        if tensor.data_type != TensorProto.FLOAT:
            return False
        values = numpy_helper.to_array(tensor)
        return bool(values.size) and float(np.max(np.abs(values))) > FP16_MAX

    big = {t.name for t in model.graph.initializer if too_big(t)}
    for node in model.graph.node:
        if node.op_type == "Constant" and any(a.name == "value" and too_big(a.t)
                                              for a in node.attribute):
            big.update(node.output)
    keep = []
    for i, node in enumerate(model.graph.node):
        if node.op_type != "Constant" and big.intersection(node.input):
            node.name = node.name or f"edgeship_fp32_keep_{i}"
            keep.append(node.name)
    return keep
