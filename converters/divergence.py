"""Name the first operator where an artifact departs from its float source, layer by layer.

Run on a few samples when an artifact fails its gate. The float ONNX graph the artifact was made
from runs in onnxruntime with every intermediate float tensor exposed as an output; so does the
artifact (ONNX int8 QDQ or fp16: the same tensor names survive quantization, a QDQ activation
``X`` being read after its ``X_DequantizeLinear_Output``, as onnxruntime's
``quantization.qdq_loss_debug`` matches them). In the float graph's topological order, the first
node whose output's relative RMS error ``rms(artifact - float) / rms(float)`` exceeds the
threshold is the first diverging operator: ``{op, name, tensor, metric, value, threshold}``.

TFLite artifacts: onnx2tf (1.28) does not keep ONNX node names on intermediate tensors (they
become ``tf.nn.convolution``…), so tensors are matched by *values*: the interpreter keeps every
tensor (``experimental_preserve_all_tensors``), and each TFLite op output, taken in execution
order, is paired with the float ONNX tensor of the same shape (or its channels-last form) that
it is closest to. The first op whose best pair is still beyond the threshold is named with its
TFLite op and tensor name, and ``onnx_candidate``: the first ONNX node of that shape after the
last matched one — a heuristic, recorded as ``matched_by: values``.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ._util import one_line
from .steps import timed
from .verify import METRIC, relative_rms

__all__ = ["METRIC", "diagnose", "first_divergence", "relative_rms"]

log = logging.getLogger(__name__)

_DQ = "_DequantizeLinear_Output"
_FLOAT = (1, 10, 11, 16)  # onnx TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
Node = tuple[str, str, str, list[str]]
"""``(op type, node name, output tensor, input tensors)`` of a float graph node."""


def diagnose(result: Any, fmt: str, artifact: Path, float_onnx: Path,
             inputs: dict[str, np.ndarray], precision: str, fidelity: Any,
             shapes: dict[str, tuple[int, ...]] | None = None) -> Any:
    """*result* (a failed ``Verification``) with ``first_divergence`` set and named in its reason,
    compared on ``fidelity.divergence_samples`` samples."""
    if not float_onnx.exists() or artifact.resolve() == float_onnx.resolve():
        return result  # the float export itself (or a TFLite source): nothing to compare with
    count = min(fidelity.divergence_samples, len(next(iter(inputs.values()))))
    from .feeds import sample_feed

    feeds = [sample_feed(inputs, i, shapes) for i in range(count)]
    fp32 = precision == "fp32"
    threshold = fidelity.divergence_fp32 if fp32 else fidelity.divergence
    with timed("diagnose", f"{fmt}-{precision}"):
        found = first_divergence(fmt, artifact, float_onnx, feeds, threshold)
    found["samples"] = count
    field = "fidelity.divergence_fp32" if fp32 else "fidelity.divergence"
    found["field"] = field
    if found.get("op"):
        note = (f"first diverging op: {found['op']} {found['name']!r} ({METRIC} "
                f"{found['value']:.3g} > {threshold:g}, {field})")
        candidate = found.get("onnx_candidate")
        if candidate:
            note += f", likely ONNX {candidate['op']} {candidate['name']!r}"
        hidden = found.get("not_compared_before")
        if hidden:
            note += (", after " + ", ".join(f"{h['op']} {h['name']!r}" for h in hidden)
                     + " (not comparable on their own)")
    elif "error" in found:
        note = found["error"]
    else:
        note = f"no layer beyond {METRIC} {threshold:g} ({field}) of {found['layers_compared']}"
    return replace(result, first_divergence=found, reason=f"{result.reason}; {note}")


def first_divergence(fmt: str, artifact: Path, float_onnx: Path, feeds: list[dict[str, Any]],
                     threshold: float) -> dict[str, Any]:
    """The first diverging operator of *artifact* against *float_onnx* on *feeds* (source-layout
    batch-1 samples); ``op: None`` when every compared layer stays within *threshold*.

    A comparison that cannot be made says why in ``{"error": ...}`` instead of raising.
    """
    try:
        with tempfile.TemporaryDirectory(prefix="edgeship-layers-") as tmp:
            ref, order = _onnx_tensors(float_onnx, feeds, Path(tmp) / "float.onnx")
            if fmt == "onnx":
                got, _ = _onnx_tensors(artifact, feeds, Path(tmp) / "artifact.onnx")
                return _first_onnx(ref, order, got, threshold)
            from ._divergence_tflite import first_tflite

            return first_tflite(artifact, feeds, ref, order, threshold)
    except Exception as exc:  # diagnostics must never hide the gate's own verdict
        log.warning("layer-by-layer comparison failed: %s", one_line(exc))
        return {"error": f"layer-by-layer comparison failed: {one_line(exc)}"}


def _first_onnx(ref: dict[str, np.ndarray], order: list[Node], got: dict[str, np.ndarray],
                threshold: float) -> dict[str, Any]:
    compared: set[str] = set()
    clipped = _clipped_next(order)
    for op, name, tensor, _ in order:
        other = got.get(tensor + _DQ, got.get(tensor))
        if other is None or other.shape != ref[tensor].shape or tensor in clipped:
            continue
        compared.add(tensor)
        value = relative_rms(other, ref[tensor])
        if value > threshold:
            return {"op": op, "name": name, "tensor": tensor, "metric": METRIC,
                    "value": float(f"{value:.4g}"), "threshold": threshold,
                    "matched_by": "name", "layers_compared": len(compared),
                    "not_compared_before": _hidden(tensor, order, compared)}
    log.info("no layer beyond %g relative RMS error (%d compared)", threshold, compared)
    return {"op": None, "metric": METRIC, "threshold": threshold, "matched_by": "name",
            "layers_compared": len(compared)}


def _clipped_next(order: list[Node]) -> set[str]:
    """Tensors read only by ``Clip`` / ``Relu``: onnxruntime's quantizer gives such a tensor its
    consumer's range (zero-point-0 int8: ``x + 3`` before ``Clip(0, 6)`` saturates at ±6), so
    it departs from the float value where the clip makes no difference; the clip's output is
    compared instead (the OCR detector for TensorRT: "Add 0.50" where the clip after it was
    0.06)."""
    readers: dict[str, set[str]] = {}
    for op, _, _, inputs in order:
        for tensor in inputs:
            readers.setdefault(tensor, set()).add(op)
    return {t for t, ops in readers.items() if ops <= {"Clip", "Relu"}}


def _hidden(tensor: str, order: list[Node], compared: set[str]) -> list[dict[str, str]]:
    """The operators feeding *tensor* whose own outputs could not be compared (fused or
    renamed in the artifact): the divergence may have started in any of them."""
    producer = {t: (op, name, ins) for op, name, t, ins in order}
    found, stack, seen = [], [tensor], {tensor}
    while stack:
        for t in producer[stack.pop()][2]:
            if t in producer and t not in compared and t not in seen:
                seen.add(t)
                stack.append(t)
                found.append({"op": producer[t][0], "name": producer[t][1]})
    return found[::-1]


def _onnx_tensors(path: Path, feeds: list[dict[str, Any]], scratch: Path
                  ) -> tuple[dict[str, np.ndarray], list[Node]]:
    """Every float node output of *path* on *feeds* (stacked), and ``(op, node, tensor,
    inputs)`` in topological order."""
    import onnx
    import onnxruntime as ort

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in
             (*model.graph.value_info, *model.graph.output, *model.graph.input)}
    present = {o.name for o in model.graph.output}
    order = [(n.op_type, n.name, t, list(n.input)) for n in model.graph.node for t in n.output
             if n.op_type != "Constant" and types.get(t) in _FLOAT]
    for _, _, t, _ in order:
        if t not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(t, types[t], None))
            present.add(t)
    onnx.save(model, str(scratch))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(scratch), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    inputs = {i.name: i for i in sess.get_inputs()}
    runs = [sess.run(names, {k: np.asarray(v, dtype=_np_type(inputs[k].type))
                             for k, v in feed.items() if k in inputs}) for feed in feeds]
    stacked = {n: np.concatenate([np.asarray(r[j], np.float32)[None] for r in runs])
               for j, n in enumerate(names)}
    return stacked, order


def _np_type(ort_type: str) -> str:
    return {"tensor(float16)": "float16", "tensor(int64)": "int64", "tensor(int32)": "int32",
            "tensor(double)": "float64", "tensor(bool)": "bool"}.get(ort_type, "float32")
