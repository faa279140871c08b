"""int8 artifacts that survive the verification gate: mixed precision and automatic fallbacks.

:func:`make_onnx_int8` builds the profile's ONNX int8 artifact, resolving ``exclude: auto`` by a
measured, bounded per-layer sensitivity (:mod:`converters.sensitivity`). :func:`gate_int8` runs
after an int8 artifact was verified: when it failed its gate it tries the int8 remedies first —
per-channel weights (when the profile asked for per-tensor), keeping the most sensitive layers
in float (1, 2, 4, … of them; ONNX only), Q/DQ at the weight layers only (ONNX), int8 weights
with int16 activations, dynamic int8 (TFLite; ONNX only for MatMul-heavy models: transformers),
Q/DQ at the weight layers without one minority layer type (``keep-float-Gemm``; ONNX) — and
fp16 last, re-verifying each, and keeps the first that passes; int16 activations and dynamic
int8 only when not far slower than fp32 (:mod:`converters.speed_guard`). A remedy that cannot
be made is recorded with its one-line error and the next is tried. The entry records
``fallback: {tried, taken, figures, cause}``. :func:`substitute_int8` runs the same ladder
for an int8 artifact that could not be made or loaded at all (the quantizer or converter
failed), with that error as the cause.

int8 means int8: an fp16 fallback is delivered under its true name — key ``<format>-fp16``,
file ``model.fp16.<format>``, ``precision: fp16`` and ``requested: <format>-int8`` — and the int8
file is not shipped. fp16 is not tried when the profile forbids it
(``quantization.fallback_fp16: false``) or already builds ``<format>-fp16`` as its own artifact.
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

from core.errors import ConversionError
from profiles.schema import Quantization

from ._util import one_line
from .int8_layers import LayerQuantizer
from .int8_options import OnnxQuantOptions, artifact_quantization
from .quantize_fp16 import convert_fp16
from .quantize_onnx import OnnxQuantizer
from .sensitivity import measure_sensitivity, most_sensitive
from .speed_guard import GUARDED, too_slow
from .steps import timed
from .verify import Verification

__all__ = ["Int8Job", "fallbacks_said", "gate_int8", "make_onnx_int8", "substitute_int8"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
Verify = Callable[..., "tuple[dict[str, Any], Verification]"]
"""``verify(key, converter_info, remedy=False)``: verify *key*'s ``model.<precision>.<format>``
in the work dir; a remedy is not diagnosed when it fails (only its figures are kept)."""
Remedy = tuple[str, str, Callable[[Path], dict[str, Any]]]
"""(name, precision it delivers, make(out_path) → converter info)."""
MATMUL_SHARE = 0.5
"""ONNX models whose weight nodes are at least this share MatMul/Gemm/Attention get the dynamic
int8 remedy (onnxruntime's ConvInteger is slow and was less exact than static on CNNs)."""
_DYNAMIC = Quantization(mode="dynamic")
"""TFLite's dynamic-range int8 (int8 weights, activations quantized per inference): the
transformer remedy, as for ONNX (full-integer int8 of all-MiniLM did not convert at all), and
that of activations whose range changes from call to call (quiet and loud audio)."""


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
    no_fp16: str | None = None
    """Why fp16 is not tried (``None``: it is the last remedy)."""
    no_reconversion: str | None = None
    """Why no remedy that converts the graph again (TFLite) is tried: the float conversion of
    the same graph failed already."""
    int8_qdq_only: str | None = None
    """Why only int8 Q/DQ remedies are tried (TensorRT builds no int16 Q/DQ and no dynamic
    int8 operators): int16 activations and dynamic int8 are skipped."""

    @classmethod
    def for_artifact(cls, work: Path, artifact: Any, calibration: dict[str, np.ndarray],
                     inputs: dict[str, np.ndarray], threads: int, progress: Progress,
                     profile_keys: tuple[str, ...] = (), arch: str | None = None) -> Int8Job:
        """The job of a profile ``Artifact`` built in *work* (next to ``model.fp32.onnx``), for a
        board of *arch* (:func:`with_arch_default`)."""
        q, fp16 = artifact_quantization(artifact, arch), f"{artifact.format}-fp16"
        no_fp16 = ("forbidden by quantization.fallback_fp16: false"
                   if q is not None and not q.fallback_fp16 else
                   f"{fp16} is built as its own artifact" if fp16 in profile_keys else None)
        qdq_only = ("the artifact runs on TensorRT, which builds int8 Q/DQ only"
                    if getattr(artifact, "runner", "auto") == "tensorrt" else None)
        return cls(artifact.key, artifact.format, work / f"model.int8.{artifact.format}",
                   work / "model.fp32.onnx", q, calibration, inputs, threads, progress, no_fp16,
                   int8_qdq_only=qdq_only)

    def out(self, precision: str) -> Path:
        """Where a remedy delivering *precision* writes its file (``model.fp16.tflite``, …)."""
        return self.path.with_name(f"model.{precision}.{self.fmt}")


@timed("quantize", "onnx-int8")
def make_onnx_int8(fp32: Path, out: Path, calibration: dict[str, np.ndarray], quantization: Any,
                   inputs: dict[str, np.ndarray], threads: int,
                   progress: Progress) -> dict[str, Any]:
    """Write the ONNX int8 artifact per the profile's ``quantization``; return how it was made."""
    options = OnnxQuantOptions.from_profile(quantization)
    with tempfile.TemporaryDirectory(prefix="edgeship-q-") as tmp:
        quantizer = OnnxQuantizer(fp32, calibration, Path(tmp))
        ranking = bound = None
        if quantization is not None and quantization.exclude == "auto":
            layers = len(quantizer.weight_nodes())
            progress(f"measuring per-layer int8 sensitivity ({layers} layers, bounded)")
            ranking, bound = measure_sensitivity(quantizer, options, inputs, threads)
            options = options.with_(exclude=most_sensitive(ranking, quantization.keep_float))
        info = quantizer.quantize(options, out)
    if ranking is not None:
        info["sensitivity"], info["sensitivity_bound"] = ranking, bound
    return info


def gate_int8(job: Int8Job, entry: dict[str, Any], result: Verification,
              verify: Verify) -> tuple[dict[str, Any], Verification]:
    """Try the remedies when *result* failed; return the entry and verdict that stand.

    When fp16 is taken the entry is the fp16 artifact's (``requested`` names *job*'s key).
    """
    entry["quantization"] = entry.get("converter", {}).get("options")
    q = job.quantization
    if result.passed or (q is not None and not q.fallback):
        return entry, result
    job.progress(f"{job.key}: {result.reason}; trying the int8 fallbacks")
    figures: list[dict[str, Any]] = [{"remedy": "as configured", **_figures(result)}]
    taken, tried = _ladder(job, figures, result.reason, verify)
    if taken is not None:
        return taken
    entry["fallback"] = {"tried": tried, "taken": None, "figures": figures,
                         "cause": result.reason}
    reason = f"{result.reason}; {fallbacks_said(tried, figures)}" if tried else result.reason
    return entry, replace(result, reason=reason)


def substitute_int8(job: Int8Job, cause: str, verify: Verify
                    ) -> tuple[tuple[dict[str, Any], Verification] | None, list[str],
                               list[dict[str, Any]]]:
    """The same remedies for an int8 artifact that could not be *made* or *loaded* (*cause*:
    the tool's one-line error): ``((entry, verdict) | None, tried, figures)``. Nothing is tried
    when the profile says ``quantization.fallback: false``."""
    if job.quantization is not None and not job.quantization.fallback:
        return None, [], []
    job.progress(f"{job.key}: could not be made ({one_line(cause, 160)}); trying the int8 "
                 "fallbacks")
    figures: list[dict[str, Any]] = [{"remedy": "as configured", "error": cause}]
    taken, tried = _ladder(job, figures, cause, verify)
    return taken, tried, figures


def fallbacks_said(tried: list[str], figures: list[dict[str, Any]]) -> str:
    """What became of the remedies *tried*, for a left-out artifact's cause: ``fallbacks a, b
    failed too``, and a remedy that passed its gate but was refused by the speed guard said so
    (``int16-activations passed but ran 34.1x the fp32 model's host time``) — it did not fail."""
    slow = {f["remedy"]: f["host_p50_ms"] / f["fp32_host_p50_ms"] for f in figures
            if f.get("too_slow") and f.get("fp32_host_p50_ms")}
    failed = [name for name in tried if name not in slow]
    said = [f"fallback{'s' * (len(failed) > 1)} {', '.join(failed)} failed too"] if failed else []
    said += [f"{name} passed but ran {x:.1f}x the fp32 model's host time (not taken)"
             for name, x in slow.items()]
    return "; ".join(said)


def _ladder(job: Int8Job, figures: list[dict[str, Any]], cause: str, verify: Verify
            ) -> tuple[tuple[dict[str, Any], Verification] | None, list[str]]:
    """Make and verify each remedy in order; the first that passes is taken (its entry records
    ``fallback``), with the names of the remedies tried."""
    tried: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgeship-fallback-") as tmp:
        for name, precision, make in _remedies(job, Path(tmp), figures):
            job.progress(f"{job.key}: fallback {name}")
            tried.append(name)
            outcome = _try(job, name, precision, make, verify, figures)
            if outcome is not None and outcome[1].passed and name in GUARDED \
                    and too_slow(job, outcome[0], verify, figures):
                continue
            if outcome is not None and outcome[1].passed:
                job.progress(f"{job.key}: fallback {name} passed ({outcome[1].reason})")
                return (_taken(outcome[0], job.key, name, tried, figures, cause),
                        outcome[1]), tried
    return None, tried


def _try(job: Int8Job, name: str, precision: str, make: Callable[[Path], dict[str, Any]],
         verify: Verify, figures: list[dict[str, Any]]
         ) -> tuple[dict[str, Any], Verification] | None:
    """Make and verify one remedy; a remedy that cannot be made is a figure with its error."""
    try:
        with timed(f"fallback {name}", job.key):
            info = make(job.out(precision))
            candidate, verdict = verify(f"{job.fmt}-{precision}", info, remedy=True)
    except ConversionError as exc:
        figures.append({"remedy": name, "error": one_line(str(exc))})
        job.progress(f"{job.key}: fallback {name} could not be made: {one_line(str(exc), 160)}")
        return None
    figures.append({"remedy": name, **_figures(verdict)})
    return candidate, verdict


def _remedies(job: Int8Job, tmp: Path, figures: list[dict[str, Any]]) -> Iterator[Remedy]:
    """int8 remedies first, in order; fp16 last unless :attr:`Int8Job.no_fp16` says why not."""
    per_channel = job.quantization is None or job.quantization.per_channel
    if job.fmt == "onnx":
        yield from _onnx_remedies(job, tmp, per_channel, figures)
        layers = LayerQuantizer(job.fp32, job.calibration, job.quantization, tmp)
        yield "weight-ops-only", "int8", lambda out: layers.quantize(out)
        if job.int8_qdq_only is not None:
            figures.extend({"remedy": name, "skipped": job.int8_qdq_only}
                           for name in ("int16-activations", "dynamic"))
        elif job.quantization is None or job.quantization.mode == "static":
            yield "int16-activations", "int8", lambda out: _int16_activations(job, tmp, out)
            if _matmul_share(job.fp32) >= MATMUL_SHARE:
                yield "dynamic", "int8", lambda out: _dynamic_int8(job, tmp, out)
        # after dynamic: all-MiniLM's MatMul-only static int8 ran at 45 ms on the host where
        # dynamic int8 ran at 14 ms (fp32: 19 ms); for TensorRT it follows weight-ops-only
        for kept, rest in layers.type_splits():
            yield f"keep-float-{kept}", "int8", lambda out, rest=rest: layers.quantize(out, rest)
        fp16: Remedy = ("fp16", "fp16", lambda out: dict(convert_fp16(job.fp32, out,
                                                                       job.calibration),
                                                          precision="fp16"))
    else:
        if not per_channel:
            yield "per-channel", "int8", lambda out: _tflite(job, out, tmp, "int8",
                                                             per_channel=True)
        if job.no_reconversion is not None:
            figures.append({"remedy": "int16-activations", "skipped": job.no_reconversion})
        elif job.quantization is None or job.quantization.mode == "static":
            yield "int16-activations", "int8", lambda out: _tflite(
                job, out, tmp, "int8", per_channel=True, activations="int16")
            # every model, not only MatMul-heavy ones (as for ONNX): TFLite's hybrid kernels
            # quantize each call's activations with that call's range. Measured in the zoo (p10
            # side by side with fp32 TFLite): the OCR detector's map cosine 0.992 at 0.83-0.92x
            # fp32 (full-integer 0.81; 16x8 passed at 17-28x); Silero VAD 0 flips of 518 at
            # 0.09-0.12 ms vs 0.03 ms (full-integer 78 flips; 16x8 19x): a 3-4x slowdown the
            # speed guard lets through, being under its 0.1 ms floor
            yield "dynamic", "int8", lambda out: _tflite(job, out, tmp, "int8",
                                                         quantization=_DYNAMIC)
        figures.append({"remedy": "keep-float", "skipped": "onnx2tf cannot keep single layers "
                                                           "of a TFLite model in float"})
        fp16 = ("fp16", "fp16", lambda out: _tflite(job, out, tmp, "fp16"))
    if job.no_fp16 is None:
        yield fp16
    else:
        figures.append({"remedy": "fp16", "skipped": job.no_fp16})


def _onnx_remedies(job: Int8Job, tmp: Path, per_channel: bool,
                   figures: list[dict[str, Any]]) -> Iterator[Remedy]:
    quantizer = OnnxQuantizer(job.fp32, job.calibration, tmp)
    options = OnnxQuantOptions.from_profile(job.quantization).with_(per_channel=True)
    if not per_channel:
        yield "per-channel", "int8", lambda out: quantizer.quantize(options, out)
    if options.mode == "static" and options.calibration == "minmax":
        # ranges clipped at the 99.999th percentile instead of the extremes: every layer still
        # int8. Measured on the selfie segmenter for TensorRT (activations with zero point 0):
        # mask mean error 0.022 of range with min-max ranges (every keep-float-N failed too),
        # 0.017 with these (threshold 0.02)
        yield "calibration-percentile", "int8", lambda out: quantizer.quantize(
            options.with_(calibration="percentile"), out)
    nodes = quantizer.weight_nodes()
    if len(nodes) > 1:
        job.progress(f"{job.key}: measuring per-layer int8 sensitivity ({len(nodes)} layers, "
                     "bounded)")
        try:
            ranking, bound = measure_sensitivity(quantizer, options, job.inputs, job.threads)
        except ConversionError as exc:  # the probes do not load: keep-float cannot help either
            figures.append({"remedy": "sensitivity", "error": one_line(str(exc))})
            return
        figures.append({"remedy": "sensitivity", "ranking": ranking[:8], "bound": bound})
        for k in (k for k in _keep_counts(len(nodes)) if k <= len(ranking)):
            keep = tuple(dict.fromkeys((*options.exclude, *most_sensitive(ranking, k))))
            yield f"keep-float-{k}", "int8", lambda out, keep=keep: quantizer.quantize(
                options.with_(exclude=keep), out)


def _dynamic_int8(job: Int8Job, tmp: Path, out: Path) -> dict[str, Any]:
    """int8 weights, activations quantized at run time per inference (``quantize_dynamic``):
    the transformer remedy. Measured on all-MiniLM-L6-v2: embedding cosine 0.991 and 4x faster
    than fp32 on the host, where static QDQ gave 0.29 and int16 activations 0.34; on CNNs it
    was worse than static (0.86-0.92) and slow (ConvInteger), hence MatMul-heavy models only."""
    (tmp / "dynamic").mkdir(exist_ok=True)
    quantizer = OnnxQuantizer(job.fp32, job.calibration, tmp / "dynamic")
    options = OnnxQuantOptions.from_profile(job.quantization).with_(
        mode="dynamic", calibration="none", activations="dynamic")
    return quantizer.quantize(options, out)


def _matmul_share(fp32: Path) -> float:
    """The share of weight nodes that are MatMul / Gemm / Attention (a transformer: ~1)."""
    import onnx

    from .quantize_onnx import WEIGHT_OPS

    ops = [n.op_type for n in onnx.load(str(fp32), load_external_data=False).graph.node
           if n.op_type in WEIGHT_OPS]
    return sum(op in ("MatMul", "Gemm", "Attention") for op in ops) / max(len(ops), 1)


def _int16_activations(job: Int8Job, tmp: Path, out: Path) -> dict[str, Any]:
    """int8 weights with int16 activations (QDQ; onnxruntime moves the graph to opset 21): the
    remedy for an activation range int8 cannot resolve, before giving up int8 weights."""
    (tmp / "int16").mkdir(exist_ok=True)
    quantizer = OnnxQuantizer(job.fp32, job.calibration, tmp / "int16")
    options = OnnxQuantOptions.from_profile(job.quantization).with_(
        per_channel=True, activations="int16", format="QDQ")
    return quantizer.quantize(options, out)


def _keep_counts(n: int) -> list[int]:
    """1, 2, 4, … layers kept in float, at most half (rounded up) of the *n* weight layers."""
    counts, k = [], 1
    while k <= max(1, (n + 1) // 2):
        counts.append(k)
        k *= 2
    return counts


def _tflite(job: Int8Job, out: Path, tmp: Path, precision: str, quantization: Any = None,
            **options: Any) -> dict[str, Any]:
    """One TFLite remedy file by onnx2tf; *quantization* replaces the job's (dynamic range)."""
    from .export_tflite import export_tflite

    info = export_tflite(job.fp32, tmp, [precision], job.calibration,
                         quantization or job.quantization, **options)
    shutil.move(str(tmp / f"model.{precision}.tflite"), out)
    return dict(info[precision], precision=precision)


def _taken(candidate: dict[str, Any], requested: str, name: str, tried: list[str],
           figures: list[dict[str, Any]], cause: str) -> dict[str, Any]:
    converter = candidate.get("converter", {})
    candidate["quantization"] = converter.get("options") if candidate["precision"] == "int8" \
        else None
    if candidate["key"] != requested:  # delivered under its true name, e.g. tflite-fp16
        candidate["requested"] = requested
    candidate["fallback"] = {"tried": tried, "taken": name, "figures": figures, "cause": cause}
    return candidate


def _figures(v: Verification) -> dict[str, Any]:
    return {"accuracy": v.accuracy, "accuracy_drop": v.accuracy_drop,
            "top1_agreement": v.top1_agreement, "cosine": v.cosine, "passed": v.passed}
