"""ONNX clean-up before a converter sees the graph: slim, opset upgrade, safe names.

:func:`clean_onnx` writes a cleaned copy of a model and returns the steps it took, for the
manifest (``converter.cleanup``). Each step is optional and recorded whether it changed the model
or not; a step that fails is recorded with its one-line error and the model goes on without it:

- ``onnxslim``: shape inference, constant folding, dead-code and common-subexpression removal,
  Conv+BN-style fusions into standard ops (onnxslim only writes default-domain ops). onnxslim
  lowers onnxruntime's process-wide log severity when imported, so run it in a converter child
  process (the TFLite route does), not in the host.
- ``opset``: ``onnx.version_converter`` up to *min_opset* when the model's default-domain opset is
  below it (per-channel ``DequantizeLinear(axis=…)`` needs 13).
- ``lstm``: LSTM nodes with a static sequence length unrolled into basic ops
  (:mod:`converters.lstm_unroll`; onnx2tf's Keras LSTM refuses a batch-1 initial state).
- ``constant inputs``: graph inputs the data holds at one value (Silero VAD's sample rate
  ``sr``, always 16000) become constants when the graph branches (``If``) — TFLite has no such
  branches and onnx2tf failed inside them; onnxslim then keeps the one branch the value takes.
  The artifact no longer takes those inputs and serves that value only (recorded as
  ``fixed_inputs``); the TFLite route asks for it (:mod:`converters.export_tflite`).
- ``names``: node and tensor names reduced to what TensorFlow accepts as scope names
  (``[A-Za-z0-9_./-]``; ``:`` is left to onnx2tf, which rewrites it itself). onnx2tf fails on
  e.g. ``Softmax@0`` ("not a valid scope name"). Graph inputs/outputs are renamed only when they
  must be; the map is returned (``io_renamed``) so callers can key data by the new names.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ._util import one_line

__all__ = ["CleanupResult", "clean_onnx", "default_opset", "held_setting", "safe_name",
           "sample_shape"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_./:\-]")


@dataclass
class CleanupResult:
    """What :func:`clean_onnx` did: the steps (manifest form), the opset, renamed graph IO."""

    path: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    opset: int | None = None
    io_renamed: dict[str, str] = field(default_factory=dict)
    op_counts: dict[str, int] = field(default_factory=dict)
    """Node count per op type of the cleaned main graph."""
    fixed_inputs: dict[str, Any] = field(default_factory=dict)
    """Inputs made constants (``constant inputs``): name → the value the artifact serves."""

    def route(self) -> list[str]:
        """The names of the steps that changed the model, in order."""
        return [s["step"] for s in self.steps if s.get("changed")]


def clean_onnx(src: Path, out: Path, *, slim: bool = True, min_opset: int | None = None,
               sanitize_names: bool = False, unroll_lstm: bool = False,
               constant_inputs: dict[str, Any] | None = None,
               input_shapes: dict[str, list[int]] | None = None) -> CleanupResult:
    """Write a cleaned copy of *src* to *out*; return what was done (see the module doc)."""
    import onnx

    model = onnx.load(str(src))
    result = CleanupResult(out, opset=default_opset(model))
    if min_opset is not None and (result.opset or 0) < min_opset:
        model = _upgrade(model, min_opset, result)
    if constant_inputs and slim:
        _fix_inputs(model, constant_inputs, input_shapes or {}, result)
    if slim:
        model = _slim(model, result)
    if unroll_lstm:
        _unroll(model, result)
        _trim_slices(model, result)
    if sanitize_names:
        result.io_renamed = _sanitize(model, result)
    result.op_counts = dict(Counter(n.op_type for n in model.graph.node))
    onnx.save(model, str(out))
    return result


def _fix_inputs(model: Any, values: dict[str, Any], shapes: dict[str, list[int]],
                result: CleanupResult) -> None:
    """Graph inputs of *values* (name → the one value the data holds) as constants, when the
    main graph branches (``If``), and the other inputs at their *shapes* (the branches test
    shapes too: Silero's inner ``If`` nodes fold only once the chunk length is known);
    recorded in ``fixed_inputs``."""
    from onnx import helper, numpy_helper

    graph = model.graph
    if not any(n.op_type == "If" for n in graph.node):
        return
    fixed = {}
    for name, value in values.items():
        spec = next((i for i in graph.input if i.name == name), None)
        if spec is None:
            continue
        dtype = helper.tensor_dtype_to_np_dtype(spec.type.tensor_type.elem_type)
        dims = [d.dim_value for d in spec.type.tensor_type.shape.dim]
        graph.input.remove(spec)
        graph.initializer.append(numpy_helper.from_array(
            np.full(dims, value, dtype=dtype), name))
        fixed[name] = value
    if not fixed:
        return
    for spec in graph.input:
        dims = spec.type.tensor_type.shape.dim
        shape = shapes.get(spec.name)
        if shape is not None and len(shape) == len(dims):
            for dim, size in zip(dims, shape):
                if not dim.HasField("dim_value"):
                    dim.ClearField("dim_param")
                    dim.dim_value = int(size)
    result.fixed_inputs = fixed
    result.steps.append({"step": "constant inputs", "changed": True, "inputs": fixed,
                         "note": "the graph branches on them (If) and the data holds each at "
                                 "one value: the artifact serves that value only"})


def sample_shape(rank: int | None, arr: np.ndarray) -> list[int]:
    """One sample of the data array *arr* as an input of *rank* takes it: a recurrent state
    (stacked whole samples, one rank higher than the input) keeps its shape, anything else gets
    a batch axis of 1 — the ``input_shapes`` of :func:`clean_onnx`."""
    return list(arr.shape[1:]) if rank == arr.ndim - 1 else [1, *arr.shape[1:]]


def held_setting(rank: int | None, arr: np.ndarray) -> int | None:
    """The one value the data array *arr* holds for a scalar integer input (a setting: Silero's
    sample rate), else ``None`` — a ``constant_inputs`` candidate of :func:`clean_onnx`."""
    if rank == 0 and np.issubdtype(arr.dtype, np.integer) and arr.size and \
            (arr == arr.flat[0]).all():
        return int(arr.flat[0])
    return None


def default_opset(model: Any) -> int | None:
    """The default-domain (``ai.onnx``) opset a ModelProto imports."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def safe_name(name: str) -> str:
    """*name* with every character TensorFlow refuses in a scope name replaced by ``_``."""
    return _UNSAFE.sub("_", name)


def _upgrade(model: Any, target: int, result: CleanupResult) -> Any:
    from onnx import version_converter

    step = {"step": "opset", "tool": "onnx.version_converter", "from": result.opset, "to": target}
    try:
        upgraded = version_converter.convert_version(model, target)
    except Exception as exc:  # the converter has gaps (ops without an adapter)
        result.steps.append({**step, "changed": False, "error": one_line(exc)})
        log.info("opset upgrade %s -> %d failed: %s", result.opset, target, one_line(exc))
        return model
    result.steps.append({**step, "changed": True})
    result.opset = target
    return upgraded


def _slim(model: Any, result: CleanupResult) -> Any:
    step: dict[str, Any] = {"step": "onnxslim", "tool": "onnxslim",
                            "version": _version("onnxslim"), "nodes_before": len(model.graph.node)}
    try:
        import onnxslim

        slimmed = onnxslim.slim(model)
        if slimmed is None:
            raise RuntimeError("onnxslim returned no model")
    except Exception as exc:  # optional step: the unslimmed model still converts
        result.steps.append({**step, "changed": False, "error": one_line(exc)})
        log.info("onnxslim failed (%s); converting the model as it is", one_line(exc))
        return model
    after = len(slimmed.graph.node)
    changed = _census(slimmed) != _census(model)
    result.steps.append({**step, "nodes_after": after, "changed": changed})
    result.opset = default_opset(slimmed)
    return slimmed


def _unroll(model: Any, result: CleanupResult) -> None:
    from .lstm_unroll import unroll_lstms

    lstms = sum(n.op_type == "LSTM" for n in model.graph.node)
    if not lstms:
        return
    step: dict[str, Any] = {"step": "lstm", "tool": "edgeship", "lstm_nodes": lstms}
    try:
        done = unroll_lstms(model)
    except Exception as exc:  # optional step: the converter gets the LSTM as it is
        result.steps.append({**step, "changed": False, "error": one_line(exc)})
        return
    result.steps.append({**step, "unrolled": done, "changed": bool(done)})


def _trim_slices(model: Any, result: CleanupResult) -> None:
    """``Slice`` nodes with constant parameters keep only the axes they cut: onnxslim writes
    every axis (``starts [0, 129, 0]``, ``ends [max, max, max]``) and onnx2tf maps such a
    slice of a channels-first tensor onto the wrong axis (silero-vad's STFT: an empty tensor)."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    trimmed = 0
    for node in graph.node:
        if node.op_type != "Slice" or len(node.input) < 4 or any(
                n not in inits for n in node.input[1:5] if n):
            continue
        starts, ends, axes = (numpy_helper.to_array(inits[n]) for n in node.input[1:4])
        steps = (numpy_helper.to_array(inits[node.input[4]]) if len(node.input) > 4
                 and node.input[4] else np.ones_like(starts))
        cut = [i for i in range(len(starts))
               if not (starts[i] == 0 and steps[i] == 1 and ends[i] >= 2 ** 62)]
        if not cut or len(cut) == len(starts):
            continue
        for k, values in enumerate((starts, ends, axes, steps)):
            name = f"{node.name or node.output[0]}__trimmed_{k}"
            graph.initializer.append(numpy_helper.from_array(
                np.asarray(values)[cut].astype(np.int64), name))
            if k + 1 < len(node.input):
                node.input[k + 1] = name
            else:
                node.input.append(name)
        trimmed += 1
    if trimmed:
        result.steps.append({"step": "slices", "tool": "edgeship", "trimmed": trimmed,
                             "changed": True})


def _census(model: Any) -> tuple[int, ...]:
    """Counts that any slimming step changes (nodes, shapes known, constants)."""
    g = model.graph
    return len(g.node), len(g.value_info), len(g.initializer), sum(len(n.input) for n in g.node)


def _sanitize(model: Any, result: CleanupResult) -> dict[str, str]:
    graphs = list(_graphs(model.graph))
    taken = {n for g in graphs for n in _names(g)}
    mapping: dict[str, str] = {}
    for name in sorted(taken):
        new = safe_name(name)
        if new != name:
            base, i = new, 1
            while new in taken or new in mapping.values():
                new, i = f"{base}_{i}", i + 1
            mapping[name] = new
    renamed_nodes = sum(1 for g in graphs for n in g.node if n.name in mapping)
    for graph in graphs:
        _rename(graph, mapping)
    io = {n.name for n in model.graph.input} | {n.name for n in model.graph.output}
    result.steps.append({"step": "names", "changed": bool(mapping), "renamed": len(mapping),
                         "nodes": renamed_nodes, "examples": dict(list(mapping.items())[:3])})
    return {old: new for old, new in mapping.items() if new in io}


def _graphs(graph: Any) -> Any:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _names(graph: Any) -> set[str]:
    names = {n.name for n in graph.node if n.name}
    for node in graph.node:
        names.update(x for x in (*node.input, *node.output) if x)
    for seq in (graph.input, graph.output, graph.value_info, graph.initializer):
        names.update(x.name for x in seq)
    return names


def _rename(graph: Any, mapping: dict[str, str]) -> None:
    for node in graph.node:
        node.name = mapping.get(node.name, node.name)
        for seq in (node.input, node.output):
            for i, name in enumerate(seq):
                seq[i] = mapping.get(name, name)
    for seq in (graph.input, graph.output, graph.value_info, graph.initializer):
        for item in seq:
            item.name = mapping.get(item.name, item.name)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
