"""Judge each output of an artifact by what it is: class scores, boxes, maps, embeddings.

:func:`infer_kind` names an output's kind — from the profile (``fidelity.outputs``), else its
name (``boxes``, ``logits``, ``embedding``…), else its shape and values (probability rows are
class scores, unit-norm rows embeddings, 4-D and up maps, ``[…, 4]`` boxes; the one 2-D output
of a model is class scores, a 2-D output beside others regression; one value per sample beside
other outputs is the sample's score — a binary decision: ``p > 0.5`` of a probability, the sign
of a logit — alone a regression). :func:`judge_output` measures
the artifact's output against the source's and applies the profile's threshold for that kind;
an fp32 artifact must instead match within ``fidelity.fp32_tolerance`` of the output's range (or
of its mean's magnitude when that is larger: fp32 rounding grows with magnitude).
Every failed check names the output, the metric, the value, the threshold and the profile field
that sets it.

Top-1 agreement on a small evaluation set is judged by its flips, not its ratio: 0.99 on 24
samples would allow no flip at all, so one unlucky sample would reject a good artifact.
:func:`allowed_flips` is the most flips a true agreement of ``fidelity.min_top1_agreement``
still explains at ``fidelity.top1_confidence`` (a one-sided binomial test: the artifact fails
only when its flips show the agreement is below the threshold). At 0.99 and 95 %: 1 flip of 24,
2 of 50, 3 of 100, 15 of 1000; the check states the count, the flips and the flips allowed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Check", "OutputJudgement", "allowed_flips", "infer_kind", "judge_output", "summary_cosine"]

_HINTS = (
    ("boxes", ("box", "bbox", "loc", "anchor")),
    ("regression", ("landmark", "coord", "offset", "delta", "regress", "keypoint", "kps", "reg")),
    ("classes", ("logit", "score", "prob", "class", "cls", "conf", "label")),
    ("embedding", ("embed", "emb", "pooler", "vector")),
    ("map", ("map", "mask", "heat", "seg", "depth")),
)
_TOKEN = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Check:
    """One metric of one output against its threshold and the profile field that sets it."""

    metric: str
    value: float
    op: str  # ">=" or "<="
    threshold: float
    field: str
    note: str = ""
    """What the threshold means, when it is derived (``of 24 samples: …``)."""

    @property
    def passed(self) -> bool:
        """Whether the value is on the right side of the threshold."""
        slack = 1e-9
        return (self.value >= self.threshold - slack if self.op == ">=" else
                self.value <= self.threshold + slack)

    def describe(self, output: str, kind: str) -> str:
        """E.g. ``output 'boxes' (boxes): max abs error / range 0.21 > 0.05
        (fidelity.max_box_error)``."""
        sign = self.op[0] if self.passed else {">=": "<", "<=": ">"}[self.op]
        sign = sign + "=" if self.passed else sign
        note = f"{self.note}; " if self.note else ""
        return (f"output {output!r} ({kind}): {self.metric} {self.value:.4g} {sign} "
                f"{self.threshold:g} ({note}{self.field})")


@dataclass(frozen=True)
class OutputJudgement:
    """The figures and verdict of one output (``verification.outputs[]`` in the manifest)."""

    name: str
    kind: str
    kind_from: str
    figures: dict[str, float | None]
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """All checks passed."""
        return all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        """One line per failed check; an inferred kind says how to set it."""
        hint = "" if self.kind_from == "profile" else (
            f" [kind from its {self.kind_from}; set fidelity.outputs.{self.name} to change it]")
        return [c.describe(self.name, self.kind) + hint for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """The manifest form."""
        return {"name": self.name, "kind": self.kind, "kind_from": self.kind_from,
                **self.figures, "passed": self.passed,
                "checks": [{"metric": c.metric, "value": c.value, "op": c.op,
                            "threshold": c.threshold, "field": c.field, "passed": c.passed,
                            **({"note": c.note} if c.note else {})}
                           for c in self.checks]}


def infer_kind(name: str, ref: np.ndarray, outputs: int,
               overrides: dict[str, str] | None = None) -> tuple[str, str]:
    """``(kind, why)`` of the source output *name* with stacked reference values *ref*."""
    if overrides and name in overrides:
        return overrides[name], "profile"
    for token in reversed(_TOKEN.findall(name.lower())):  # the head noun: box_scores → scores
        for kind, hints in _HINTS:
            if any(token.startswith(h) for h in hints):
                return kind, "name"
    return _kind_from_values(ref, outputs)


def _kind_from_values(ref: np.ndarray, outputs: int) -> tuple[str, str]:
    if ref.ndim >= 2 and int(np.prod(ref.shape[1:])) == 1:
        # one value per sample beside other outputs: the sample's score (face mesh's face
        # presence, a VAD's speech probability next to its state), a binary decision; alone,
        # a regression (an age, a distance)
        return ("classes", "shape") if outputs > 1 else ("regression", "shape")
    if ref.ndim >= 4:
        return "map", "shape"
    if ref.ndim == 3:
        if ref.shape[-1] == 4:
            return "boxes", "shape"
        seq = ref.astype(np.float64)  # per position a distribution (a CTC text recogniser):
        if (seq >= -1e-6).all() and np.allclose(seq.sum(-1), 1.0, atol=1e-3):  # class scores,
            return "classes", "values"  # judged by the top-1 at each position
        return "other", "shape"
    if ref.ndim < 2 or ref.shape[1] < 2:
        return "regression", "shape"
    rows = ref.astype(np.float64)
    if (rows >= -1e-6).all() and np.allclose(rows.sum(1), 1.0, atol=1e-3):
        return "classes", "values"
    if np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-3):
        return "embedding", "values"
    return ("classes", "shape") if outputs == 1 else ("regression", "shape")


def judge_output(name: str, kind: str, kind_from: str, got: np.ndarray, want: np.ndarray,
                 precision: str, fidelity: Any, accuracy_drop: tuple[float, float] | None = None
                 ) -> OutputJudgement:
    """Figures of *got* against *want* (stacked, source layout) and the checks for *kind*.

    *accuracy_drop* is ``(drop, budget)`` for the output the labels are judged on.
    """
    a, b = got.astype(np.float64), want.astype(np.float64)
    span = _range(b)
    err = np.abs(a - b)
    figures: dict[str, float | None] = {
        "max_abs_error": _r(float(err.max()) if err.size else 0.0),
        "max_error_of_range": _r(float(err.max()) / span if err.size else 0.0),
        "mean_error_of_range": _r(float(err.mean()) / span if err.size else 0.0),
        "range": _r(span), "cosine": _r(_cosine(a, b, span)), "top1_agreement": None,
        # fp32 rounding grows with magnitude: a near-constant output far from 0 (a speech
        # probability that stays at 6e-4 ± 1e-5) is judged against its mean, not its range
        "max_error_of_scale": _r(float(err.max()) / max(span, abs(float(b.mean())))
                                 if err.size else 0.0)}
    if kind == "classes" and b.ndim >= 2 and b.shape[-1] > 1:
        same = a.argmax(-1) == b.argmax(-1)
        figures["top1_agreement"] = _r(float(np.mean(same)))
        figures["top1_samples"], figures["top1_flips"] = int(same.size), int(same.size - same.sum())
        figures["top1_tie_flips"] = _tie_flips(a, b, getattr(fidelity, "top1_tie_ratio", 1.0))
    elif kind == "classes" and b.ndim >= 2 and b.size == len(b):  # one score per sample
        a, b = _two_classes(a.reshape(len(a), 1), b.reshape(len(b), 1))
        return judge_output(name, kind, kind_from, a, b, precision, fidelity, accuracy_drop)
    checks = _checks(kind, figures, precision, fidelity, accuracy_drop)
    return OutputJudgement(name, kind, kind_from, figures, checks)


def _checks(kind: str, f: dict[str, float | None], precision: str, fid: Any,
            drop: tuple[float, float] | None) -> tuple[Check, ...]:
    def value(key: str) -> float:
        return float(f[key] or 0.0)

    max_error = "max abs error / range"
    if precision == "fp32":
        return (Check("max abs error / max(range, |mean|)", value("max_error_of_scale"), "<=",
                      fid.fp32_tolerance, "fidelity.fp32_tolerance"),)
    if kind == "state":  # carried to the next sample: judged by the outputs that follow
        return ()
    if kind == "classes":
        if drop is not None:
            return (Check("accuracy drop", drop[0], "<=", drop[1], "budgets.max_accuracy_drop"),)
        if f["top1_agreement"] is not None:
            return (_top1_check(int(value("top1_samples")), int(value("top1_flips")),
                                int(value("top1_tie_flips")), fid),)
    if kind in ("boxes", "regression"):
        return (Check(max_error, value("max_error_of_range"), "<=", fid.max_box_error,
                      "fidelity.max_box_error"),)
    cosine = Check("cosine", value("cosine"), ">=", fid.min_cosine, "fidelity.min_cosine")
    if kind == "embedding":
        return (cosine,)
    return (cosine, Check("mean abs error / range", value("mean_error_of_range"), "<=",
                          fid.max_mean_error, "fidelity.max_mean_error"))


def allowed_flips(samples: int, min_agreement: float, confidence: float) -> int:
    """The most top-1 flips of *samples* that a true agreement of *min_agreement* explains at
    *confidence*: the largest ``k`` with ``P(flips >= k) >= 1 - confidence`` when each sample
    flips with probability ``1 - min_agreement`` (one-sided binomial test)."""
    p = 1.0 - min_agreement
    if p <= 0.0:
        return 0
    if p >= 1.0:
        return samples
    alpha, below = 1.0 - confidence, 0.0  # below: P(flips < k)
    for k in range(samples + 1):
        if 1.0 - below < alpha:
            return k - 1
        below += math.exp(math.lgamma(samples + 1) - math.lgamma(k + 1) -
                          math.lgamma(samples - k + 1) + k * math.log(p) +
                          (samples - k) * math.log1p(-p))
    return samples


def _top1_check(samples: int, flips: int, ties: int, fid: Any) -> Check:
    allowed = allowed_flips(samples, fid.min_top1_agreement, fid.top1_confidence)
    tie_note = (f", {ties} more between classes the source scores near-equal (not counted: "
                f"fidelity.top1_tie_ratio {fid.top1_tie_ratio:g})" if ties else "")
    note = (f"of {samples}: agreement {(samples - flips) / max(samples, 1):.4g}{tie_note}; a "
            f"true {fid.min_top1_agreement:g} explains up to {allowed} at "
            f"{fid.top1_confidence:.0%} confidence")
    return Check("top-1 flips", float(flips - ties), "<=", float(allowed),
                 "fidelity.min_top1_agreement, fidelity.top1_confidence", note)


def _tie_flips(got: np.ndarray, want: np.ndarray, ratio: float) -> int:
    """Flips to a class the source scores at ≥ *ratio* of its top-1 probability (softmax of the
    source's scores, or the scores themselves when they are probabilities already)."""
    ref = want.reshape(-1, want.shape[-1])
    pick = got.reshape(-1, got.shape[-1]).argmax(-1)
    top = ref.argmax(-1)
    flipped = pick != top
    if not flipped.any():
        return 0
    probs = ref if (ref.min() >= 0 and np.allclose(ref.sum(-1), 1.0, atol=1e-3)) else \
        np.exp(ref - ref.max(-1, keepdims=True))
    rows = np.arange(len(ref))
    share = probs[rows, pick] / np.maximum(probs[rows, top], 1e-30)
    return int(np.sum(flipped & (share >= ratio)))


def _two_classes(got: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One score per sample as the probabilities of two classes ``[1 - p, p]``: *p* is the
    score itself when the source's scores are probabilities (all in [0, 1]), else the
    sigmoid of a logit — so the decision is ``p > 0.5`` and a near-tie is ``p`` near 0.5."""
    probs = bool((want >= 0).all() and (want <= 1).all())

    def pair(x: np.ndarray) -> np.ndarray:
        p = x.clip(0, 1) if probs else 1.0 / (1.0 + np.exp(-x.clip(-60, 60)))
        return np.concatenate([1.0 - p, p], axis=1)

    return pair(got), pair(want)


def _range(b: np.ndarray) -> float:
    if not b.size:
        return 1.0
    span = float(b.max() - b.min())
    return span if span > 0 else max(float(np.abs(b).max()), 1e-12)


EMPTY_RMS = 1e-4
"""A reference sample whose RMS is below this share of the output's range is empty (a detection
map with nothing in it): its direction is rounding noise, so it does not count in the mean
cosine (the mean-error check still judges it)."""


def summary_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The mean per-sample cosine of all outputs (``[n, features]`` each) for the summary, with
    empty reference samples left out as the gate leaves them out (:data:`EMPTY_RMS`)."""
    span = float(b.max() - b.min()) if b.size else 0.0
    return _cosine(a, b, span if span > 0 else None)


def _cosine(a: np.ndarray, b: np.ndarray, span: float | None = None) -> float:
    n = len(b)
    a, b = a.reshape(n, -1), b.reshape(n, -1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = np.where(both_zero, 1.0, np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-30))
    if span is not None and b.shape[1]:
        empty = nb / np.sqrt(b.shape[1]) < EMPTY_RMS * span
        if empty.all():  # nothing but empty samples: their overall direction
            return _cosine(a.reshape(1, -1), b.reshape(1, -1))
        cos = cos[~empty]
    return float(np.mean(cos))


def _r(x: float) -> float:
    return float(f"{x:.6g}")
