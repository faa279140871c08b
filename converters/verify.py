"""Verify artifacts against the original model and measure host latency.

Each artifact runs with its real runtime, one evaluation sample at a time (batch 1); its outputs,
matched to the source's by name and mapped back to the source's layout (:mod:`converters._runners`),
are compared with the original's (torch for torch sources, onnxruntime fp32 for ONNX sources)
output by output, each judged by its kind (:mod:`converters.fidelity`): class scores by top-1
agreement (accuracy drop against ``budgets.max_accuracy_drop`` with labels), boxes / regression by
their max error against the output's range, maps / embeddings / others by cosine (and mean error).
An fp32 artifact must match within ``fidelity.fp32_tolerance`` of each output's range.
Thresholds live in the profile's ``fidelity`` section; a failed gate names the output, the metric,
the value, the threshold and the field.

Host latency is the median of :data:`HOST_RUNS` runs (fewer, at least :data:`HOST_MIN_RUNS`,
when they take over :data:`HOST_BUDGET_S`) with at most this host's cores
(:func:`host_threads`): a host figure, not the board's. An int8 artifact whose median is above
the fp32 artifact's of the same format gets ``slower_than_fp32: true``
(:func:`flag_slower_than_fp32`; onnxruntime int8 on x86 can be slower than fp32).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from core.errors import VerificationError

from ._runners import SourceOutputs
from ._threads import torch_threads
from .fidelity import OutputJudgement, infer_kind, judge_output, summary_cosine
from .steps import timed
from .streams import Carry, carried_feed, find_carries

__all__ = [
    "METRIC",
    "HOST_RUNS",
    "MAX_EVAL_SAMPLES",
    "Reference",
    "Verification",
    "check_verifications",
    "collect_outputs",
    "compare",
    "flag_slower_than_fp32",
    "host_latency",
    "host_latency_record",
    "host_threads",
    "measure_side_by_side",
    "reference_accuracy",
    "relative_rms",
]

log = logging.getLogger(__name__)

MAX_EVAL_SAMPLES = 1000
HOST_RUNS = 100
HOST_MIN_RUNS = 20
HOST_BUDGET_S = 2.0
"""The manifest's host figure: 100 runs, or fewer (at least 20) once 2 s went by — a 40 ms
model would otherwise take 4 s per artifact, for a figure that is not the board's."""

Outputs = list[np.ndarray]
"""One stacked array per model output, first axis = samples, in the source's order."""


class StackedOutputs(list):  # type: ignore[type-arg]
    """:data:`Outputs` that remember, per output, whether each sample's array was stacked whole
    (a state or scalar output: no batch axis) or concatenated along its batch axis of 1."""

    whole: list[bool]


@dataclass(frozen=True)
class Reference:
    """The source model's outputs on the evaluation samples, their names and kinds.

    ``conversion``: the outputs of the model the artifacts were converted from, when a recipe
    made it differ from the source (fp32 artifacts are held to it); ``feed``: the first sample,
    used to tell artifact outputs apart by their values when names and shapes cannot.
    """

    outputs: Outputs
    names: list[str]
    kinds: list[tuple[str, str]]
    feed: dict[str, np.ndarray] | None = None
    conversion: Outputs | None = None
    whole: tuple[bool, ...] = ()
    carries: tuple[Carry, ...] = ()
    """State inputs that continuing samples take from the run's own state output
    (:mod:`converters.streams`): every artifact is run that way."""

    @classmethod
    def of(cls, outputs: Outputs, names: list[str] | None = None, fidelity: Any = None,
           feed: dict[str, np.ndarray] | None = None,
           inputs: dict[str, np.ndarray] | None = None) -> Reference:
        """Name (``output_<i>`` by default) and infer the kind of each output; with the stacked
        *inputs* the outputs ran on, find the states carried from sample to sample (their
        outputs are of kind ``state`` unless the profile names their kind)."""
        names = list(names) if names else [f"output_{i}" for i in range(len(outputs))]
        overrides = dict(fidelity.outputs) if fidelity is not None else None
        kinds = [infer_kind(n, o, len(outputs), overrides) for n, o in zip(names, outputs)]
        carries = find_carries(inputs, list(outputs), names) if inputs else ()
        for c in carries:
            if not overrides or names[c.output] not in overrides:
                kinds[c.output] = ("state", f"input {c.input!r}")
        whole = tuple(getattr(outputs, "whole", None) or [False] * len(outputs))
        return cls(list(outputs), names, kinds, feed, whole=whole, carries=carries)

    def source(self) -> SourceOutputs:
        """What a runner needs to match and lay out an artifact's outputs (each output's shape and
        first value as one inference returns it: whole-sample outputs without a batch axis)."""
        whole = self.whole or (False,) * len(self.outputs)
        shapes = [tuple(o.shape[1:]) if w else (1, *o.shape[1:])
                  for o, w in zip(self.outputs, whole)]
        firsts = [o[0] if w else o[:1] for o, w in zip(self.outputs, whole)]
        return SourceOutputs(self.names, shapes, self.feed, firsts if self.feed else None)

    @property
    def labelled(self) -> int | None:
        """Index of the class-scores output the labels are judged on (the first), if any."""
        return next((i for i, (k, _) in enumerate(self.kinds) if k == "classes"), None)

    def with_conversion(self, outputs: Outputs) -> Reference:
        """This reference, with the converted-from model's outputs for the fp32 tolerance."""
        return replace(self, conversion=outputs)


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
    outputs: list[dict[str, Any]] = field(default_factory=list)
    first_divergence: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, object]:
        """The manifest form."""
        return asdict(self)


def collect_outputs(run: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
                    inputs: dict[str, np.ndarray], limit: int = MAX_EVAL_SAMPLES,
                    shapes: dict[str, tuple[int, ...]] | None = None,
                    carries: tuple[Carry, ...] = ()) -> Outputs:
    """Run *run* on each sample of *inputs*, fed as the model takes it (*shapes*, see
    :func:`converters.feeds.sample_feed`), and stack the outputs, first axis = samples: an output
    with a leading axis of 1 is concatenated along it, any other (state, scalar) stacked. With
    *carries*, a sample that continues a sequence takes the run's own state of the one before."""
    from .feeds import sample_feed

    n = min(limit, len(next(iter(inputs.values()))))
    per_sample: list[list[np.ndarray]] = []
    with torch_threads(1):  # batch 1: one torch thread is far faster on a busy host
        for i in range(n):
            feed = carried_feed(sample_feed(inputs, i, shapes), i, carries,
                                per_sample[-1] if per_sample else None)
            per_sample.append(run(feed))
    outs = [[np.asarray(s[j]) for s in per_sample] for j in range(len(per_sample[0]))]
    stacked = StackedOutputs(np.concatenate(o) if o[0].ndim and o[0].shape[0] == 1
                             else np.stack(o) for o in outs)
    stacked.whole = [not (o[0].ndim and o[0].shape[0] == 1) for o in outs]
    return stacked


def compare(outs: Outputs, ref: Reference | Outputs, labels: np.ndarray | None,
            max_drop: float, *, precision: str = "int8", fidelity: Any = None) -> Verification:
    """Figures of *outs* against the reference *ref*, output by output, and the gate's verdict.

    *precision* ``fp32`` holds every output to ``fidelity.fp32_tolerance``; other precisions
    are judged by each output's kind. *fidelity* is the profile's section (defaults if None).
    """
    from profiles import Fidelity

    fid = fidelity if fidelity is not None else Fidelity()
    ref = ref if isinstance(ref, Reference) else Reference.of(ref, fidelity=fid)
    n = len(ref.outputs[0])
    acc = drop = None
    if labels is not None and ref.labelled is not None:
        i = ref.labelled
        acc = float(np.mean(outs[i].reshape(n, -1).argmax(1) == labels[:n]))
        drop = float(np.mean(ref.outputs[i].reshape(n, -1).argmax(1) == labels[:n])) - acc
    judged = _judge(outs, ref, precision, fid, None if drop is None else (drop, max_drop))
    a = np.concatenate([o.reshape(n, -1) for o in outs], axis=1).astype(np.float64)
    b = np.concatenate([o.reshape(n, -1) for o in ref.outputs], axis=1).astype(np.float64)
    drift = float(np.max(np.abs(a - b))) if a.size else 0.0
    top1 = next((j.figures["top1_agreement"] for j in judged
                 if j.figures["top1_agreement"] is not None), None)
    passed = all(j.passed for j in judged)
    return Verification(n, _r(acc), _r(drop), _r(top1), float(f"{drift:.6g}"),
                        float(f"{summary_cosine(a, b):.6f}"), passed,
                        _reason(judged, precision, labels is not None, ref),
                        [j.to_dict() for j in judged])


def reference_accuracy(ref: Reference | Outputs, labels: np.ndarray | None) -> float | None:
    """Accuracy of the original model (``manifest`` ``reference.accuracy``)."""
    ref = ref if isinstance(ref, Reference) else Reference.of(ref)
    if labels is None or ref.labelled is None:
        return None
    out = ref.outputs[ref.labelled]
    return _r(float(np.mean(out.reshape(len(out), -1).argmax(1) == labels[: len(out)])))


def host_threads(threads: int) -> int:
    """Threads for host timing: the profile's, at most this host's cores."""
    return max(1, min(threads, os.cpu_count() or 1))


def host_latency(invoke: Callable[[], object], runs: int = HOST_RUNS,
                 warmup: int = 10, budget_s: float | None = None) -> dict[str, float]:
    """Median latency (ms) of *invoke* over *runs* calls on this host, after *warmup* calls;
    with *budget_s*, timing stops once that much time went by and :data:`HOST_MIN_RUNS` calls
    were timed (``runs`` says how many were)."""
    for _ in range(warmup):
        invoke()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < runs:
        start = time.perf_counter()
        invoke()
        times.append(time.perf_counter() - start)
        if budget_s is not None and len(times) >= HOST_MIN_RUNS and \
                time.perf_counter() - began > budget_s:
            break
    return {"p50": round(float(np.median(times)) * 1e3, 4), "runs": len(times)}


def measure_side_by_side(invokers: dict[str, Callable[[], object]], runs: int = 100,
                         rounds: int = 5, warmup: int = 10,
                         percentile: float = 50.0) -> dict[str, float]:
    """The *percentile* (50: the median) of each invoker's ms over *runs* calls, interleaved in
    *rounds* rounds."""
    for invoke in invokers.values():
        for _ in range(warmup):
            invoke()
    samples: dict[str, list[float]] = {name: [] for name in invokers}
    per_round = [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]
    for count in per_round:
        for name, invoke in invokers.items():
            for _ in range(count):
                start = time.perf_counter()
                invoke()
                samples[name].append(time.perf_counter() - start)
    return {name: round(float(np.percentile(t, percentile)) * 1e3, 4)
            for name, t in samples.items()}


@timed("host latency")
def host_latency_record(invoke: Callable[[], object], threads: int, board_threads: int,
                        runs: int = HOST_RUNS) -> dict[str, Any]:
    """:func:`host_latency` labelled as this host's figure (``manifest`` ``host_latency_ms``),
    timed for at most :data:`HOST_BUDGET_S` beyond :data:`HOST_MIN_RUNS` calls."""
    return {**host_latency(invoke, runs, budget_s=HOST_BUDGET_S), "host": True, "threads": threads,
            "board_threads": board_threads, "note": "measured on the build host with at most "
            "its cores; the board's figure (deploy) is the one that counts"}


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


def check_verifications(results: dict[str, Verification], max_drop: float | None = None) -> None:
    """Raise :class:`VerificationError` naming every artifact that failed its gate (each reason
    names the output, metric, value, threshold and the profile field that sets it)."""
    failed = {k: v for k, v in results.items() if not v.passed}
    if not failed:
        return
    parts = "; ".join(f"{k}: {v.reason}" for k, v in failed.items())
    raise VerificationError(
        f"verification failed for {', '.join(failed)} ({parts}); the bundle was not written — "
        "drop those artifacts from the profile, use a higher precision, or change the profile "
        "field named above if the threshold is too strict for this model")


def _judge(outs: Outputs, ref: Reference, precision: str, fid: Any,
           drop: tuple[float, float] | None) -> list[OutputJudgement]:
    judged = []
    for i, (name, (kind, why)) in enumerate(zip(ref.names, ref.kinds)):
        want = ref.conversion[i] if precision == "fp32" and ref.conversion else ref.outputs[i]
        judged.append(judge_output(name, kind, why, outs[i], want, precision, fid,
                                   drop if i == ref.labelled else None))
    return judged


def _reason(judged: list[OutputJudgement], precision: str, labels: bool, ref: Reference) -> str:
    failures = [f for j in judged for f in j.failures()]
    if failures:
        return "; ".join(failures)
    head = "labels" if labels and ref.labelled is not None else "no labels, drift only"
    if precision == "fp32":
        head += "; fp32 tolerance" + (" (against the model after the recipe)"
                                      if ref.conversion else "")
    worst = [c.describe(j.name, j.kind) for j in judged for c in j.checks]
    carried = [f"state {ref.names[c.output]!r} carried into {sum(c.continues)} samples, judged "
               "by their outputs" for c in ref.carries if precision != "fp32"]
    return f"{head}: {'; '.join(worst + carried)}"


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


METRIC = "relative RMS error"
"""The metric the first-diverging-op search compares tensors by."""


def relative_rms(got: np.ndarray, want: np.ndarray) -> float:
    """``rms(got - want) / rms(want)`` (0 when both are zero)."""
    a, b = np.asarray(got, np.float64), np.asarray(want, np.float64)
    den = float(np.sqrt(np.mean(b ** 2))) if b.size else 0.0
    num = float(np.sqrt(np.mean((a - b) ** 2))) if b.size else 0.0
    return num / den if den > 0 else (0.0 if num == 0 else float("inf"))
