"""Activations that overflow fp16, measured on samples, so their nodes stay in float32.

:func:`overflowing_nodes` runs the fp32 ONNX model in onnxruntime (graph optimisations off, so
every tensor keeps its name) with each float intermediate tensor of the main graph exposed as an
output, on a few samples, and returns the nodes that produce or read a tensor whose magnitude
exceeds :data:`LIMIT`. Keeping both sides in float32 matters: a kept producer's output is cast
back to fp16 for a converted consumer, which would overflow to ``inf`` at that cast.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ._util import one_line

__all__ = ["LIMIT", "MAX_SAMPLES", "overflowing_nodes"]

log = logging.getLogger(__name__)

LIMIT = 32768.0
"""Half of fp16's largest finite value: a tensor past it on the samples may overflow on other
inputs (and has lost all fractional precision: fp16's step there is 32)."""
MAX_SAMPLES = 4
"""Samples run: enough to see a range, cheap for any model."""


def overflowing_nodes(model: Any, samples: dict[str, np.ndarray]) -> tuple[list[str], float]:
    """Names of the nodes of *model* (an ``onnx.ModelProto``; unnamed ones get a name) that
    produce or read a float tensor beyond :data:`LIMIT` on *samples*, and the largest magnitude
    seen. A model onnxruntime cannot run this way returns ``([], 0.0)`` (logged)."""
    try:
        peaks = _peaks(model, samples)
    except Exception as exc:  # onnxruntime / onnx errors: the guard is best effort
        log.warning("fp16 range check skipped: %s", one_line(exc))
        return [], 0.0
    big = {name for name, peak in peaks.items() if peak > LIMIT}
    keep = []
    for i, node in enumerate(model.graph.node):
        if big.intersection(node.input) or big.intersection(node.output):
            node.name = node.name or f"edgeship_fp32_range_{i}"
            keep.append(node.name)
    return keep, max(peaks.values(), default=0.0)


def _peaks(model: Any, samples: dict[str, np.ndarray]) -> dict[str, float]:
    import onnx

    from ._tensor_probe import probe_session
    from .feeds import sample_feed

    probe = onnx.shape_inference.infer_shapes(model)
    session = probe_session(probe, [v.name for v in probe.graph.value_info
                                    if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT])
    names = [o.name for o in session.get_outputs()]
    inits = {i.name for i in probe.graph.initializer}
    shapes = {i.name: tuple(d.dim_value or -1 for d in i.type.tensor_type.shape.dim)
              for i in probe.graph.input if i.name not in inits}  # as _shapes.onnx_input_shapes
    peaks: dict[str, float] = {}
    count = min(MAX_SAMPLES, len(next(iter(samples.values()))))
    for i in range(count):
        for name, value in zip(names, session.run(None, sample_feed(samples, i, shapes))):
            if value.dtype == np.float32 and value.size:
                peak = float(np.max(np.abs(value)))
                peaks[name] = max(peaks.get(name, 0.0), peak)
    return peaks
