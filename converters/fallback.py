"""int8 artifacts that survive the verification gate: mixed precision and automatic fallbacks.

:func:`make_onnx_int8` builds the profile's ONNX int8 artifact, resolving ``exclude: auto`` by a
measured per-layer sensitivity (:mod:`converters.sensitivity`). :func:`gate_int8` runs after an
int8 artifact was verified: when it failed ``max_accuracy_drop`` it tries the known remedies in
order — per-channel weights (when the profile asked for per-tensor), keeping the most sensitive
layers in float (1, 2, 4, … of them; ONNX only), then fp16 — re-verifying each, and keeps the first
that passes. The manifest entry records ``fallback: {tried, taken, figures}``; when every remedy
fails the artifact keeps its failed verdict (and the gate's one-line error names the remedies).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .quantize_onnx import OnnxQuantizer, OnnxQuantOptions, convert_fp16
from .sensitivity import measure_sensitivity, most_sensitive
from .verify import Verification

__all__ = ["Int8Job", "gate_int8", "int8_quantization", "make_onnx_int8"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
Verify = Callable[[dict[str, Any]], "tuple[dict[str, Any], Verification]"]
Remedy = tuple[str, Callable[[Path], dict[str, Any]]]


@dataclass(frozen=True)
class Int8Job:
    """What the fallbacks need: the fp32 ONNX source, the data, the artifact and its options."""

    key: str
    fmt: str
    path: Path
    fp32: Path
    quantization: Any  # profiles.Quantization | None
    calibration: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    threads: int
    progress: Progress

    @classmethod
    def for_artifact(cls, work: Path, artifact: Any, calibration: dict[str, np.ndarray],
                     inputs: dict[str, np.ndarray], threads: int, progress: Progress) -> Int8Job:
        """The job of a profile ``Artifact`` built in *work* (next to ``model.fp32.onnx``)."""
        return cls(artifact.key, artifact.format, work / f"model.int8.{artifact.format}",
                   work / "model.fp32.onnx", artifact.quantization, calibration, inputs, threads,
                   progress)


def make_onnx_int8(fp32: Path, out: Path, calibration: dict[str, np.ndarray], quantization: Any,
                   inputs: dict[str, np.ndarray], threads: int,
                   progress: Progress) -> dict[str, Any]:
    """Write the ONNX int8 artifact per the profile's ``quantization``; return how it was made."""
    options = OnnxQuantOptions.from_profile(quantization)
    with tempfile.TemporaryDirectory(prefix="edgeship-q-") as tmp:
        quantizer = OnnxQuantizer(fp32, calibration, Path(tmp))
        ranking = None
        if quantization is not None and quantization.exclude == "auto":
            layers = len(quantizer.weight_nodes())
            progress(f"measuring per-layer int8 sensitivity ({layers} layers)")
            ranking = measure_sensitivity(quantizer, options, inputs, threads)
            options = options.with_(exclude=most_sensitive(ranking, quantization.keep_float))
        info = quantizer.quantize(options, out)
    if ranking is not None:
        info["sensitivity"] = ranking
    return info


def gate_int8(job: Int8Job, entry: dict[str, Any], result: Verification,
              verify: Verify) -> tuple[dict[str, Any], Verification]:
    """Try the remedies when *result* failed; return the entry and verdict that stand."""
    entry["quantization"] = entry.get("converter", {}).get("options")
    q = job.quantization
    if result.passed or (q is not None and not q.fallback):
        return entry, result
    job.progress(f"{job.key}: {result.reason}; trying the int8 fallbacks")
    figures: list[dict[str, Any]] = [{"remedy": "as configured", **_figures(result)}]
    tried: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgeship-fallback-") as tmp:
        for name, make in _remedies(job, Path(tmp), figures):
            job.progress(f"{job.key}: fallback {name}")
            tried.append(name)
            info = make(job.path)
            candidate, verdict = verify(info)
            figures.append({"remedy": name, **_figures(verdict)})
            if verdict.passed:
                job.progress(f"{job.key}: fallback {name} passed ({verdict.reason})")
                return _taken(candidate, entry, name, tried, figures), verdict
    entry["fallback"] = {"tried": tried, "taken": None, "figures": figures}
    reason = f"{result.reason}; fallbacks {', '.join(tried)} failed too"
    return entry, replace(result, reason=reason)


def _remedies(job: Int8Job, tmp: Path, figures: list[dict[str, Any]]) -> Iterator[Remedy]:
    per_channel = job.quantization is None or job.quantization.per_channel
    if job.fmt == "onnx":
        yield from _onnx_remedies(job, tmp, per_channel, figures)
    else:
        if not per_channel:
            yield "per-channel", lambda out: _tflite(job, out, tmp, "int8", per_channel=True)
        figures.append({"remedy": "keep-float", "skipped": "onnx2tf cannot keep single layers "
                                                           "of a TFLite model in float"})
        yield "fp16", lambda out: _tflite(job, out, tmp, "fp16")


def _onnx_remedies(job: Int8Job, tmp: Path, per_channel: bool,
                   figures: list[dict[str, Any]]) -> Iterator[Remedy]:
    quantizer = OnnxQuantizer(job.fp32, job.calibration, tmp)
    options = OnnxQuantOptions.from_profile(job.quantization).with_(per_channel=True)
    if not per_channel:
        yield "per-channel", lambda out: quantizer.quantize(options, out)
    nodes = quantizer.weight_nodes()
    if len(nodes) > 1:
        job.progress(f"{job.key}: measuring per-layer int8 sensitivity ({len(nodes)} layers)")
        ranking = measure_sensitivity(quantizer, options, job.inputs, job.threads)
        figures.append({"remedy": "sensitivity", "ranking": ranking[:8]})
        for k in _keep_counts(len(nodes)):
            keep = tuple(dict.fromkeys((*options.exclude, *most_sensitive(ranking, k))))
            yield f"keep-float-{k}", lambda out, keep=keep: quantizer.quantize(
                options.with_(exclude=keep), out)
    yield "fp16", lambda out: dict(convert_fp16(job.fp32, out), precision="fp16")


def _keep_counts(n: int) -> list[int]:
    """1, 2, 4, … layers kept in float, at most half (rounded up) of the *n* weight layers."""
    counts, k = [], 1
    while k <= max(1, (n + 1) // 2):
        counts.append(k)
        k *= 2
    return counts


def _tflite(job: Int8Job, out: Path, tmp: Path, precision: str, **options: Any) -> dict[str, Any]:
    from .export_tflite import export_tflite

    info = export_tflite(job.fp32, tmp, [precision], job.calibration, job.quantization, **options)
    shutil.move(str(tmp / f"model.{precision}.tflite"), out)
    return dict(info[precision], precision=precision)


def _taken(candidate: dict[str, Any], original: dict[str, Any], name: str, tried: list[str],
           figures: list[dict[str, Any]]) -> dict[str, Any]:
    converter = candidate.get("converter", {})
    candidate["precision"] = converter.get("precision", original["precision"])
    candidate["quantization"] = converter.get("options")
    candidate["fallback"] = {"tried": tried, "taken": name, "figures": figures}
    return candidate


def _figures(v: Verification) -> dict[str, Any]:
    return {"accuracy": v.accuracy, "accuracy_drop": v.accuracy_drop,
            "top1_agreement": v.top1_agreement, "cosine": v.cosine, "passed": v.passed}


def int8_quantization(profile: Any, fmt: str) -> Any:
    """The ``quantization`` options of the profile's *fmt* int8 artifact (``None``: defaults)."""
    return next((a.quantization for a in profile.artifacts
                 if a.format == fmt and a.precision == "int8"), None)
