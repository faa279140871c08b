"""Per-layer quantization sensitivity of an ONNX model, measured, not guessed.

Each node with weights (:data:`~converters.quantize_onnx.WEIGHT_OPS`) is quantized *alone*
(``nodes_to_quantize=[node]``, everything else float) with the artifact's own options, and the
model's outputs on evaluation samples are compared with the float model's: the score is the
normalised mean squared error ``mean((q - f)²) / mean(f²)``. A layer whose quantization alone moves
the outputs most is the first to keep in float (``exclude: auto`` / ``keep_float: N`` and the
gate's "exclude sensitive layers" fallback).

Guarantees: every candidate node gets a score; the list is sorted worst first; the reference is
the pre-processed float graph the quantizer works on, so export error is not counted as
quantization error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ._runners import OnnxRunner
from ._shapes import onnx_input_shapes
from .feeds import feed_shapes
from .quantize_onnx import OnnxQuantizer, OnnxQuantOptions
from .verify import collect_outputs

__all__ = ["MAX_SAMPLES", "measure_sensitivity", "most_sensitive"]

log = logging.getLogger(__name__)

MAX_SAMPLES = 128
"""Evaluation samples per measurement: enough to rank layers, cheap enough for every layer."""


def measure_sensitivity(quantizer: OnnxQuantizer, options: OnnxQuantOptions,
                        inputs: dict[str, np.ndarray], threads: int = 1,
                        limit: int = MAX_SAMPLES) -> list[dict[str, Any]]:
    """Score every weight node of *quantizer*'s model, worst first (``node``, ``op``, ``nmse``)."""
    shapes = feed_shapes(inputs, onnx_input_shapes(quantizer.source))
    ref = _outputs(quantizer.source, shapes, inputs, threads, limit)
    ops = _op_types(quantizer.source)
    probe = quantizer.workdir / "sensitivity.onnx"
    scores = []
    for node in quantizer.weight_nodes():
        quantizer.quantize(options.with_(exclude=()), probe, only=[node])
        outs = _outputs(probe, shapes, inputs, threads, limit)
        scores.append({"node": node, "op": ops.get(node, "?"), "nmse": _nmse(outs, ref)})
    scores.sort(key=lambda s: s["nmse"], reverse=True)
    log.info("sensitivity (worst first): %s",
             ", ".join(f"{s['node']} {s['nmse']:.3g}" for s in scores[:5]))
    return scores


def most_sensitive(scores: list[dict[str, Any]], k: int) -> tuple[str, ...]:
    """The *k* worst nodes of a :func:`measure_sensitivity` ranking."""
    return tuple(s["node"] for s in scores[:k])


def _outputs(path: Path, shapes: dict[str, tuple[int, ...]], inputs: dict[str, np.ndarray],
             threads: int, limit: int) -> list[np.ndarray]:
    runner = OnnxRunner(path, shapes, threads)
    return collect_outputs(runner.run, inputs, limit, shapes)


def _nmse(outs: list[np.ndarray], ref: list[np.ndarray]) -> float:
    a = np.concatenate([o.reshape(len(o), -1) for o in outs], axis=1).astype(np.float64)
    b = np.concatenate([o.reshape(len(o), -1) for o in ref], axis=1).astype(np.float64)
    return float(f"{np.mean((a - b) ** 2) / max(float(np.mean(b ** 2)), 1e-30):.6g}")


def _op_types(path: Path) -> dict[str, str]:
    import onnx

    return {n.name: n.op_type for n in onnx.load(str(path)).graph.node}
