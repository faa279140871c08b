"""Per-layer quantization sensitivity of an ONNX model, measured, not guessed.

Each node with weights (:data:`~converters.quantize_onnx.WEIGHT_OPS`) is quantized *alone*
(``nodes_to_quantize=[node]``, everything else float) with the artifact's own options, and the
model's outputs on evaluation samples are compared with the float model's: the score is the
normalised mean squared error ``mean((q - f)²) / mean(f²)``. A layer whose quantization alone moves
the outputs most is the first to keep in float (``exclude: auto`` / ``keep_float: N`` and the
gate's "exclude sensitive layers" fallback).

The scan is bounded (:class:`ScanBound`): at most ``max_layers`` nodes are scanned — when a model
has more, the candidates are the first and last weight nodes plus those whose weights have the
widest range for their spread (``max|w| / std(w)``: the coarsest int8 grid), a cheap pre-screen —
on at most ``samples`` evaluation samples, and the scan stops after ``max_seconds`` of wall time.
Calibration is computed once and cached by the quantizer, so each probe costs one quantization
and ``samples`` inferences. The bound and what it cut are returned for the manifest.

Guarantees: every scanned node gets a score and the list is sorted worst first (unscanned nodes
are not listed; a node the quantizer leaves float when asked for it alone — an LSTM in static
mode — is listed in the record's ``not_quantized_alone``, not scored); the reference is the
pre-processed float graph the quantizer works on, so export error is not counted as
quantization error; a probe that onnxruntime cannot load raises
:class:`~core.errors.ConversionError` at once (it is the first, cheap sign of a graph the
int8 route cannot make).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from ._runners import OnnxRunner
from ._shapes import onnx_input_shapes
from ._util import one_line
from .feeds import feed_shapes, sample_feed
from .int8_options import OnnxQuantOptions
from .quantize_onnx import OnnxQuantizer
from .steps import timed
from .verify import collect_outputs

__all__ = ["MAX_SAMPLES", "ScanBound", "measure_sensitivity", "most_sensitive"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanBound:
    """Limits of one sensitivity scan (recorded in the manifest with what they cut).

    Args:
        max_layers: weight nodes probed at most (pre-screened by weight range beyond that).
        samples: evaluation samples per probe.
        max_seconds: wall time after which no new probe starts.
    """

    max_layers: int = 24
    samples: int = 16
    max_seconds: float = 20.0

    def __post_init__(self) -> None:
        if self.max_layers < 1 or self.samples < 1 or self.max_seconds <= 0:
            raise ValueError(f"scan bound out of range: {self}")


MAX_SAMPLES = ScanBound().samples
"""Evaluation samples per probe: enough to rank layers, cheap enough for every layer."""


@timed("sensitivity", "onnx-int8")
def measure_sensitivity(quantizer: OnnxQuantizer, options: OnnxQuantOptions,
                        inputs: dict[str, np.ndarray], threads: int = 1,
                        bound: ScanBound = ScanBound()
                        ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score the weight nodes of *quantizer*'s model, worst first (``node``, ``op``, ``nmse``).

    Returns the ranking and the manifest's record of the bound (limits, nodes total/scanned,
    samples, seconds, ``stopped``: ``None`` | ``"max_layers"`` | ``"max_seconds"``).
    """
    started = time.perf_counter()
    shapes = feed_shapes(inputs, onnx_input_shapes(quantizer.source))
    ref = _outputs(quantizer.source, shapes, inputs, threads, bound.samples)
    ops = _op_types(quantizer.source)
    nodes = quantizer.weight_nodes()
    candidates = _prescreen(quantizer.source, nodes, bound.max_layers)
    probe = quantizer.workdir / "sensitivity.onnx"
    scores, stopped = [], "max_layers" if len(candidates) < len(nodes) else None
    alone: list[str] = []  # nodes onnxruntime does not quantize by themselves
    for node in candidates:
        if time.perf_counter() - started > bound.max_seconds:
            stopped = "max_seconds"
            break
        try:
            quantizer.quantize(options.with_(exclude=()), probe, only=[node])
        except ConversionError as exc:
            if getattr(exc, "stage", None) == "load":
                raise
            alone.append(node)  # e.g. an LSTM in static mode: nothing to score, not a failure
            continue
        outs = _outputs(probe, shapes, inputs, threads, bound.samples)
        scores.append({"node": node, "op": ops.get(node, "?"), "nmse": _nmse(outs, ref)})
    scores.sort(key=lambda s: s["nmse"], reverse=True)
    seconds = round(time.perf_counter() - started, 3)
    log.info("sensitivity (worst first, %d/%d nodes, %.1f s): %s", len(scores), len(nodes),
             seconds, ", ".join(f"{s['node']} {s['nmse']:.3g}" for s in scores[:5]))
    record = {**asdict(bound), "nodes": len(nodes), "scanned": len(scores),
              "samples_used": min(bound.samples, len(next(iter(inputs.values())))),
              "seconds": seconds, "stopped": stopped}
    if alone:
        record["not_quantized_alone"] = alone
    return scores, record


def most_sensitive(scores: list[dict[str, Any]], k: int) -> tuple[str, ...]:
    """The *k* worst nodes of a :func:`measure_sensitivity` ranking."""
    return tuple(s["node"] for s in scores[:k])


def _outputs(path: Path, shapes: dict[str, tuple[int, ...]], inputs: dict[str, np.ndarray],
             threads: int, limit: int) -> list[np.ndarray]:
    try:
        runner = OnnxRunner(path, shapes, threads, example=sample_feed(inputs, 0, shapes),
                            spin=False)  # outputs only, never timed
    except Exception as exc:  # onnxruntime's own types: the probe graph does not load
        raise ConversionError(f"int8 sensitivity probe {path.name} does not load in "
                              f"onnxruntime: {one_line(exc)}") from exc
    return collect_outputs(runner.run, inputs, limit, shapes)


def _prescreen(path: Path, nodes: list[str], k: int) -> list[str]:
    """*nodes* when there are at most *k*; else the first, the last and the widest-range rest."""
    if len(nodes) <= k:
        return nodes
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    ratio = {}
    for node in graph.node:
        weights = [numpy_helper.to_array(inits[n]) for n in node.input[1:2] if n in inits]
        if node.name in nodes and weights:
            w = weights[0].astype(np.float64)
            ratio[node.name] = float(np.max(np.abs(w)) / max(float(np.std(w)), 1e-12))
    ends = [nodes[0], nodes[-1]]
    rest = sorted((n for n in nodes if n not in ends), key=lambda n: ratio.get(n, 0.0),
                  reverse=True)
    keep = set(ends + rest[:k - 2])
    return [n for n in nodes if n in keep]


def _nmse(outs: list[np.ndarray], ref: list[np.ndarray]) -> float:
    a = np.concatenate([o.reshape(len(o), -1) for o in outs], axis=1).astype(np.float64)
    b = np.concatenate([o.reshape(len(o), -1) for o in ref], axis=1).astype(np.float64)
    return float(f"{np.mean((a - b) ** 2) / max(float(np.mean(b ** 2)), 1e-30):.6g}")


def _op_types(path: Path) -> dict[str, str]:
    import onnx

    return {n.name: n.op_type for n in onnx.load(str(path)).graph.node}
