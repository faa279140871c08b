"""ONNX ``LSTM`` nodes with a static sequence length → the same cell written in basic ops.

onnx2tf converts an ONNX ``LSTM`` to a Keras LSTM layer, which refuses the initial state of a
stateful model whose batch is 1 (silero-vad: "An `initial_state` was passed that is not
compatible with `cell.state_size`"). Unrolled — per step ``gates = x·Wᵀ + h·Rᵀ + b``, the
``i, o, f, c`` slices, ``c = f⊙c + i⊙c̃``, ``h = o⊙tanh(c)`` — the cell is MatMul, Add, Slice,
Sigmoid, Tanh and Mul, which every converter and runtime has; numerically it is the same
function (the test compares it with onnxruntime's LSTM).

Only what the rewrite can keep exact is unrolled: forward direction, default activations, no
peepholes, clip or coupled input-forget gate, ``layout`` 0, constant weights, static sequence
length and batch, no ``sequence_lens``. Any other LSTM is left as it is.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["unroll_lstms"]

log = logging.getLogger(__name__)


def unroll_lstms(model: Any) -> int:
    """Rewrite every LSTM of *model*'s main graph that fits (see the module doc), in place;
    return how many were rewritten."""
    from onnx import numpy_helper, shape_inference

    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consts = {n.output[0]: numpy_helper.to_array(a.t) for n in graph.node
              if n.op_type == "Constant" for a in n.attribute if a.name == "value"}
    inits.update(consts)
    shapes = _shapes(shape_inference.infer_shapes(model))
    done = 0
    for node in [n for n in graph.node if n.op_type == "LSTM"]:
        plan = _plan(node, inits, shapes)
        if plan is None:
            continue
        at = list(graph.node).index(node)
        new_nodes, new_inits, flat_out = _unrolled(node, *plan,
                                                   _unsqueezed_2d(graph, inits, shapes))
        graph.node.remove(node)
        for offset, new in enumerate(new_nodes):
            graph.node.insert(at + offset, new)
        graph.initializer.extend(new_inits)
        _squeezes_read_2d(graph, inits, flat_out)
        done += 1
    if done:
        log.info("unrolled %d LSTM node(s) into basic ops", done)
    return done


def _shapes(model: Any) -> dict[str, list[int | None]]:
    out = {}
    for vi in (*model.graph.value_info, *model.graph.input, *model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return out


def _plan(node: Any, inits: dict[str, np.ndarray], shapes: dict[str, list[int | None]]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int] | None:
    """``(W, R, bias, seq, batch, hidden)`` when the node can be unrolled exactly, else None."""
    attrs = {a.name: a for a in node.attribute}
    if any(k in attrs for k in ("activations", "clip", "activation_alpha", "activation_beta")):
        return None
    if attrs.get("direction") is not None and attrs["direction"].s not in (b"forward", b""):
        return None
    if (attrs.get("input_forget") and attrs["input_forget"].i) or (
            attrs.get("layout") and attrs["layout"].i):
        return None
    ins = list(node.input) + [""] * (8 - len(node.input))
    x, w, r, b, seq_lens, _h0, _c0, peep = ins
    if seq_lens or peep or w not in inits or r not in inits or (b and b not in inits):
        return None
    shape = shapes.get(x)
    if not shape or len(shape) != 3 or any(d is None or d <= 0 for d in shape):
        return None
    weights, recurrent = inits[w], inits[r]
    hidden = recurrent.shape[-1]
    if weights.shape[0] != 1:
        return None
    bias = inits[b][0] if b else np.zeros(8 * hidden, np.float32)
    return weights[0], recurrent[0], bias[:4 * hidden] + bias[4 * hidden:], shape[0], shape[1], \
        hidden


def _unsqueezed_2d(graph: Any, inits: dict[str, np.ndarray],
                   shapes: dict[str, list[int | None]]) -> dict[str, str]:
    """``Unsqueeze(axes=[0])`` outputs of 2-D tensors → those tensors: the unrolled cell reads
    them directly (onnx2tf mistakes a ``[1, batch, n]`` tensor for channels-first and transposes
    it, which breaks the reshape back to 2-D)."""
    out = {}
    for n in graph.node:
        if n.op_type != "Unsqueeze" or len(shapes.get(n.input[0]) or []) != 2:
            continue
        if _axes(n, inits) == [0]:
            out[n.output[0]] = n.input[0]
    return out


def _axes(node: Any, inits: dict[str, np.ndarray]) -> list[int] | None:
    """A Squeeze/Unsqueeze's axes: its attribute (opset < 13) or constant second input."""
    axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    if axes is None and len(node.input) > 1 and node.input[1] in inits:
        axes = [int(v) for v in np.ravel(inits[node.input[1]])]
    return axes


def _squeezes_read_2d(graph: Any, inits: dict[str, np.ndarray], flat: dict[str, str]) -> None:
    """``Squeeze(axes=[0])`` of a final state → ``Identity`` of the cell's 2-D state."""
    for n in graph.node:
        if n.op_type != "Squeeze" or n.input[0] not in flat:
            continue
        if _axes(n, inits) == [0]:
            source = flat[n.input[0]]
            del n.input[:]
            n.input.append(source)
            del n.attribute[:]
            n.op_type = "Identity"


def _unrolled(node: Any, weights: np.ndarray, recurrent: np.ndarray, bias: np.ndarray,
              seq: int, batch: int, hidden: int, flat: dict[str, str] | None = None
              ) -> tuple[list[Any], list[Any], dict[str, str]]:
    from onnx import helper, numpy_helper

    flat = flat or {}
    ins = list(node.input) + [""] * (8 - len(node.input))
    outs = list(node.output) + [""] * (3 - len(node.output))
    p = (node.name or node.output[0]).replace("/", "_") + "__unrolled"
    inits = [numpy_helper.from_array(a, f"{p}_{name}") for name, a in (
        ("wt", np.ascontiguousarray(weights.T, np.float32)),
        ("rt", np.ascontiguousarray(recurrent.T, np.float32)),
        ("b", bias.astype(np.float32)),
        ("state_shape", np.array([batch, hidden], np.int64)),
        ("x_shape", np.array([batch, weights.shape[1]], np.int64)),
        ("out_shape", np.array([1, batch, hidden], np.int64)),
        ("step_shape", np.array([1, 1, batch, hidden], np.int64)),
        ("axis", np.array([1], np.int64)),
        ("zeros", np.zeros((batch, hidden), np.float32)),
        *((f"t{t}", np.array(t, np.int64)) for t in range(seq)),
        *((f"g{g}", np.array([g * hidden], np.int64)) for g in range(5)))]
    nodes: list[Any] = []

    def add(op: str, inputs: list[str], **attrs: Any) -> str:
        out = f"{p}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def state(name: str) -> str:
        if name in flat:
            return flat[name]
        return add("Reshape", [name, f"{p}_state_shape"]) if name else f"{p}_zeros"

    h, c = state(ins[5]), state(ins[6])
    steps = []
    for t in range(seq):
        x_t = (flat.get(ins[0]) or add("Reshape", [ins[0], f"{p}_x_shape"]) if seq == 1 else
               add("Gather", [ins[0], f"{p}_t{t}"], axis=0))
        gates = add("Add", [add("Add", [add("MatMul", [x_t, f"{p}_wt"]),
                                        add("MatMul", [h, f"{p}_rt"])]), f"{p}_b"])
        i, o, f, g = (add("Slice", [gates, f"{p}_g{k}", f"{p}_g{k + 1}", f"{p}_axis"])
                      for k in range(4))
        i, o, f, g = add("Sigmoid", [i]), add("Sigmoid", [o]), add("Sigmoid", [f]), \
            add("Tanh", [g])
        c = add("Add", [add("Mul", [f, c]), add("Mul", [i, g])])
        h = add("Mul", [o, add("Tanh", [c])])
        steps.append(h)
    if outs[0]:
        ys = [add("Reshape", [s, f"{p}_step_shape"]) for s in steps]
        nodes.append(helper.make_node("Concat", ys, [outs[0]], axis=0, name=f"{p}_y") if
                     len(ys) > 1 else helper.make_node("Identity", ys, [outs[0]], name=f"{p}_y"))
    for value, name in ((h, outs[1]), (c, outs[2])):
        if name:
            nodes.append(helper.make_node("Reshape", [value, f"{p}_out_shape"], [name],
                                          name=f"{name}__reshape"))
    return nodes, inits, {name: value for value, name in ((h, outs[1]), (c, outs[2])) if name}
