"""int8 for models whose weights sit inside If / Loop / Scan subgraphs.

onnxruntime's static quantizers skip subgraphs: the QDQ quantizer ignores them and its
calibration only sees the main graph's tensors, so a model whose whole network is a branch of an
``If`` (silero-vad chooses its 16 / 8 kHz network with one) comes out with no node quantized.
Its ``quantize_dynamic`` does walk subgraphs with ``extra_options={"EnableSubgraph": True}``
(int8 weights, activations quantized at run time: ``ConvInteger``, ``MatMulInteger``) but
expects each weight to be an initializer, while exporters write subgraph weights as
``Constant`` nodes. :func:`lift_subgraph_constants` turns those into initializers of their own
subgraph (same values, same names), which is all the dynamic quantizer needs.

Measured on silero-vad 6.2.3 (opset 16): static QDQ → "no node was quantized"; static QOperator
with ``EnableSubgraph`` → onnxruntime raises ``AttributeError``; dynamic with ``EnableSubgraph``
after lifting → 12 ``ConvInteger`` nodes that onnxruntime 1.31 loads (the LSTM stays float).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["CONTROL_FLOW", "all_op_types", "lift_subgraph_constants", "subgraph_weight_count",
           "subgraph_weights"]

CONTROL_FLOW = ("If", "Loop", "Scan")
"""Operators whose attributes hold subgraphs."""
_WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "Attention")


def _subgraphs(graph: Any) -> list[Any]:
    """The graphs held by the nodes of *graph* (one level down)."""
    found = []
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                found.append(attr.g)
            found.extend(attr.graphs)
    return found


def all_op_types(graph: Any) -> set[str]:
    """The op types of *graph* and of every subgraph inside it."""
    types, todo = set(), [graph]
    while todo:
        sub = todo.pop()
        types.update(n.op_type for n in sub.node)
        todo.extend(_subgraphs(sub))
    return types


def subgraph_weight_count(path: Path) -> int:
    """How many nodes with weights (Conv, MatMul, LSTM, …) live inside subgraphs of *path*."""
    import onnx

    return subgraph_weights(onnx.load(str(path), load_external_data=False).graph)


def subgraph_weights(graph: Any) -> int:
    """:func:`subgraph_weight_count` of a loaded ``GraphProto``."""
    count, todo = 0, _subgraphs(graph)
    while todo:
        sub = todo.pop()
        count += sum(n.op_type in _WEIGHT_OPS for n in sub.node)
        todo.extend(_subgraphs(sub))
    return count


def lift_subgraph_constants(src: Path, out: Path) -> Path:
    """Write *src* to *out* with every float ``Constant`` node inside a subgraph made an
    initializer of that subgraph (the main graph is left as it is); return *out*."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(src))
    todo = _subgraphs(model.graph)
    while todo:
        sub = todo.pop()
        todo.extend(_subgraphs(sub))
        keep = []
        for node in sub.node:
            value = [a for a in node.attribute if a.name == "value"]
            if (node.op_type == "Constant" and len(node.attribute) == 1 and value
                    and value[0].t.data_type == TensorProto.FLOAT):
                tensor = TensorProto()
                tensor.CopyFrom(value[0].t)
                tensor.name = node.output[0]
                sub.initializer.append(tensor)
            else:
                keep.append(node)
        del sub.node[:]
        sub.node.extend(keep)
    onnx.save(model, str(out))
    return out
