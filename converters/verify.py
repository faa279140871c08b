"""Verify artifacts against the original model and measure host latency.

Each artifact runs with its real runtime, one evaluation sample at a time (batch 1), and its
outputs are compared with the original's (torch for torch sources, onnxruntime fp32 for ONNX
sources): accuracy and its drop (with labels), top-1 agreement, max abs drift, mean cosine.
The gate: ``accuracy_drop <= budgets.max_accuracy_drop`` with labels; without labels
``top1_agreement >= 0.99`` and ``cosine >= 0.99``.

Host latency is the median of :data:`HOST_RUNS` runs with the profile's threads; an int8 artifact
whose median is above the fp32 artifact's of the same format gets ``slower_than_fp32: true``
(:func:`flag_slower_than_fp32`; onnxruntime int8 on x86 can be slower than fp32).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from edgeship.errors import VerificationError

__all__ = [
    "HOST_RUNS",
    "MAX_EVAL_SAMPLES",
    "MIN_AGREEMENT",
    "MIN_COSINE",
    "Verification",
    "check_verifications",
    "collect_outputs",
    "compare",
    "flag_slower_than_fp32",
    "host_latency",
    "reference_accuracy",
]

log = logging.getLogger(__name__)

MAX_EVAL_SAMPLES = 1000
HOST_RUNS = 100
MIN_AGREEMENT = 0.99
MIN_COSINE = 0.99

Outputs = list[np.ndarray]
"""One stacked array per model output, first axis = samples."""


@dataclass(frozen=True)
class Verification:
    """The figures of one artifact against the original model (``manifest`` ``verification``)."""

    samples: int
    accuracy: float | None
    accuracy_drop: float | None
    top1_agreement: float | None
    max_abs_drift: float
    cosine: float
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        """The manifest form."""
        return asdict(self)


def collect_outputs(run: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
                    inputs: dict[str, np.ndarray], limit: int = MAX_EVAL_SAMPLES,
                    shapes: dict[str, tuple[int, ...]] | None = None) -> Outputs:
    """Run *run* on each sample of *inputs*, fed as the model takes it (*shapes*, see
    :func:`converters.feeds.sample_feed`), and stack the outputs, first axis = samples: an output
    with a leading axis of 1 is concatenated along it, any other (state, scalar) stacked."""
    from .feeds import sample_feed

    n = min(limit, len(next(iter(inputs.values()))))
    per_sample = [run(sample_feed(inputs, i, shapes)) for i in range(n)]
    outs = [[np.asarray(s[j]) for s in per_sample] for j in range(len(per_sample[0]))]
    return [np.concatenate(o) if o[0].ndim and o[0].shape[0] == 1 else np.stack(o) for o in outs]


def compare(outs: Outputs, ref: Outputs, labels: np.ndarray | None,
            max_drop: float) -> Verification:
    """Figures of *outs* against the reference *ref*, and the gate's verdict."""
    n = len(ref[0])
    a = np.concatenate([o.reshape(n, -1) for o in outs], axis=1).astype(np.float64)
    b = np.concatenate([o.reshape(n, -1) for o in ref], axis=1).astype(np.float64)
    drift = float(np.max(np.abs(a - b))) if a.size else 0.0
    cosine = _mean_cosine(a, b)
    classifier = ref[0].ndim == 2 and ref[0].shape[1] > 1
    top1 = float(np.mean(outs[0].argmax(1) == ref[0].argmax(1))) if classifier else None
    acc = drop = None
    if labels is not None and classifier:
        acc = float(np.mean(outs[0].argmax(1) == labels[:n]))
        drop = float(np.mean(ref[0].argmax(1) == labels[:n])) - acc
    passed, reason = _gate(drop, max_drop, top1, cosine)
    return Verification(n, _r(acc), _r(drop), _r(top1), float(f"{drift:.6g}"),
                        float(f"{cosine:.6f}"), passed, reason)


def reference_accuracy(ref: Outputs, labels: np.ndarray | None) -> float | None:
    """Accuracy of the original model (``manifest`` ``reference.accuracy``)."""
    if labels is None or ref[0].ndim != 2 or ref[0].shape[1] < 2:
        return None
    return _r(float(np.mean(ref[0].argmax(1) == labels[: len(ref[0])])))


def host_latency(invoke: Callable[[], object], runs: int = HOST_RUNS,
                 warmup: int = 10) -> dict[str, float]:
    """Median latency (ms) of *invoke* over *runs* calls on this host, after *warmup* calls."""
    for _ in range(warmup):
        invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        invoke()
        times.append(time.perf_counter() - start)
    return {"p50": round(float(np.median(times)) * 1e3, 4), "runs": runs}


def flag_slower_than_fp32(artifacts: list[dict[str, object]]) -> list[str]:
    """Set ``slower_than_fp32`` on each int8 manifest entry (by ``host_latency_ms.p50`` against
    the fp32 entry of the same format, when there is one); return the keys flagged slower."""
    fp32 = {a["format"]: a for a in artifacts if a["precision"] == "fp32"}
    slower = []
    for entry in artifacts:
        base = fp32.get(entry["format"])
        if not str(entry["key"]).endswith("int8") or base is None or base is entry:
            continue
        p50 = entry["host_latency_ms"]["p50"]  # type: ignore[index]
        base_p50 = base["host_latency_ms"]["p50"]  # type: ignore[index]
        entry["slower_than_fp32"] = bool(p50 > base_p50)
        if entry["slower_than_fp32"]:
            slower.append(str(entry["key"]))
            log.warning("%s is slower than %s on this host (p50 %.4g ms vs %.4g ms)",
                        entry["key"], base["key"], p50, base_p50)
    return slower


def check_verifications(results: dict[str, Verification], max_drop: float) -> None:
    """Raise :class:`VerificationError` naming every artifact that failed its gate."""
    failed = {k: v for k, v in results.items() if not v.passed}
    if not failed:
        return
    parts = "; ".join(f"{k}: {v.reason}" for k, v in failed.items())
    raise VerificationError(
        f"verification failed for {', '.join(failed)} ({parts}); the bundle was not written — "
        f"drop those artifacts from the profile, use a higher precision, or raise "
        f"budgets.max_accuracy_drop (now {max_drop})")


def _gate(drop: float | None, max_drop: float, top1: float | None,
          cosine: float) -> tuple[bool, str]:
    if drop is not None:
        ok = drop <= max_drop + 1e-9
        return ok, f"accuracy drop {drop:.4f} {'<=' if ok else '>'} budget {max_drop}"
    ok_top1 = top1 is None or top1 >= MIN_AGREEMENT
    ok = ok_top1 and cosine >= MIN_COSINE
    figures = f"cosine {cosine:.4f} (min {MIN_COSINE})"
    if top1 is not None:
        figures = f"top-1 agreement {top1:.4f} (min {MIN_AGREEMENT}), " + figures
    return ok, f"no labels, drift only: {figures}"


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.sum(a * b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = np.where(both_zero, 1.0, dot / np.maximum(na * nb, 1e-30))
    return float(np.mean(cos))


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)
