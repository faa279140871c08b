"""ONNX fp32 → fp16 (float32 I/O kept), with nodes that read constants beyond fp16's range kept
in float32. The int8 side of ONNX quantization is :mod:`converters.quantize_onnx`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from ._util import one_line, op_hint
from .steps import timed

__all__ = ["FP16_MAX", "convert_fp16"]

log = logging.getLogger(__name__)

FP16_MAX = 65504.0
"""The largest finite float16: a float constant beyond it cannot be stored in fp16."""


@timed("convert", "onnx-fp16")
def convert_fp16(fp32: Path, out: Path,
                 samples: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Write an fp16 copy of *fp32* (float32 I/O kept) to *out*; return how it was made.

    Nodes that read a float constant beyond fp16's range (a BatchNorm variance of 1e8 in a real
    OCR detector) stay in float32 rather than have the constant clamped; with *samples*, so do
    the nodes that produce or read an activation beyond half of fp16's range on them
    (:mod:`converters.fp16_ranges`). ``kept_float`` names them all; ``activation_peak`` is the
    largest activation seen.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from .fp16_ranges import overflowing_nodes

    peak = None
    try:
        model = onnx.load(str(fp32))
        keep = _fp16_unsafe_nodes(model)
        if samples:
            hot, peak = overflowing_nodes(model, samples)
            keep = list(dict.fromkeys(keep + hot))
        model = convert_float_to_float16(model, keep_io_types=True, max_finite_val=FP16_MAX,
                                         node_block_list=keep or None)
        _drop_round_trips(model)
        onnx.save(model, str(out))
    except Exception as exc:  # converter/ protobuf errors
        raise ConversionError(f"ONNX fp16 conversion failed{op_hint(exc, fp32)}: "
                              f"{one_line(exc)}; drop onnx-fp16 from the profile") from exc
    info = {"tool": "onnxruntime.transformers.float16", "method": "convert_float_to_float16",
            "keep_io_types": True, "kept_float": keep}
    if peak is not None:
        info["activation_peak"] = float(f"{peak:.6g}")
    return info


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
    constants = [n for n in model.graph.node if n.op_type == "Constant" and any(
        a.name == "value" and too_big(a.t) for a in n.attribute)]
    for node in constants:  # as initializers: the converter keeps those of kept nodes in fp32
        tensor = next(a.t for a in node.attribute if a.name == "value")  # (a kept Constant
        tensor.name = node.output[0]  # node would be cast to fp16, i.e. to inf, after it)
        model.graph.initializer.append(tensor)
        model.graph.node.remove(node)
        big.add(tensor.name)
    keep = []
    for i, node in enumerate(model.graph.node):
        if big.intersection(node.input):
            node.name = node.name or f"edgeship_fp32_keep_{i}"
            keep.append(node.name)
    return keep


def _elem_types(model: Any) -> dict[str, int]:
    """Element type of each tensor of the main graph (inputs, initializers, inferred values, and
    each Cast's output by its ``to``)."""
    from onnx import shape_inference

    graph = model.graph
    types = {t.name: t.data_type for t in graph.initializer}
    try:
        inferred = shape_inference.infer_shapes(model).graph.value_info
    except Exception:  # inference is best effort: Casts and IO still say their types
        inferred = []
    for vi in (*graph.input, *graph.output, *graph.value_info, *inferred):
        if vi.type.tensor_type.elem_type:
            types.setdefault(vi.name, vi.type.tensor_type.elem_type)
    for node in graph.node:
        if node.op_type == "Cast":
            types[node.output[0]] = next(a.i for a in node.attribute if a.name == "to")
    return types


def _drop_round_trips(model: Any) -> int:
    """Remove the ``Cast(fp16)`` → ``Cast(fp32)`` pairs the converter puts between float32
    tensors (it casts every kept node's output to fp16, even when only kept nodes read it, so
    an activation kept for its range would overflow there); return how many were removed."""
    from onnx import TensorProto

    graph = model.graph
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def cast_to(node: Any, dtype: int) -> bool:
        return node.op_type == "Cast" and any(a.name == "to" and a.i == dtype
                                              for a in node.attribute)

    dtypes = _elem_types(model)
    removed, pairs = [], 0
    for down in [n for n in graph.node if cast_to(n, TensorProto.FLOAT16)]:
        ups = consumers.get(down.output[0], [])
        if dtypes.get(down.input[0]) != TensorProto.FLOAT:  # int64 → fp16 → fp32 is no round
            continue  # trip (a shape value cast for a Range the converter keeps in float)
        if (not ups or down.output[0] in outputs
                or not all(cast_to(u, TensorProto.FLOAT) and u.output[0] not in outputs
                           for u in ups)):
            continue
        for up in ups:
            for reader in consumers.get(up.output[0], []):
                reader.input[:] = [down.input[0] if i == up.output[0] else i
                                   for i in reader.input]
        removed += [down, *ups]
        pairs += 1
    for node in removed:
        graph.node.remove(node)
    return pairs
