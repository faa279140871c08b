"""The speed guard of the int8 remedies that keep float or int16 arithmetic somewhere
(:data:`GUARDED`): int16 activations run on slow reference kernels on CPUs, and dynamic int8
quantizes activations at every call, so such an artifact far slower than the fp32 model is not
taken (:func:`too_slow`, called by the remedy ladder in :mod:`converters.fallback`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["GUARDED", "MAX_SLOWDOWN", "SIDE_BY_SIDE_PERCENTILE", "SIDE_BY_SIDE_ROUNDS",
           "too_slow"]


GUARDED = ("int16-activations", "dynamic")
"""The remedies whose artifact is timed against fp32 before it is taken."""
MAX_SLOWDOWN = 2.0
"""A guarded remedy's artifact slower than this many times the fp32 model on the host is not
taken. int16 activations run on reference kernels on CPUs (measured on the OCR text detector:
TFLite 16x8 1996 ms and ONNX int16 QDQ 462 ms against 106 ms for TFLite fp32; the board's
profiling timed out); TFLite dynamic-range int8 of the OCR recogniser ran 23 ms against 7.2 ms
for its fp32 TFLite (10th percentiles side by side; that of the detector 29 ms against 32 ms).
The fp16 after them is as fast as fp32 at half the size."""


SLOWDOWN_FLOOR_MS = 1.0
"""Below this absolute difference a slowdown is timer noise on a tiny model, not a reason —
when the two figures were timed apart (verification, then the guard)."""
SIDE_BY_SIDE_FLOOR_MS = 0.1
"""The same floor for figures timed side by side, whose noise is far lower: Silero's 16x8
TFLite ran 0.76 ms against 0.04 ms for fp32 (18x) in alternating rounds — under the 1 ms floor,
yet no noise (on the board, several times slower, the gap is milliseconds). Below it a slowdown
is taken even when real: Silero's dynamic-range TFLite ran 0.09-0.12 ms against 0.03 ms (3-4x,
a fraction of a millisecond per 32 ms audio chunk, at a quarter of the size); the manifest
still flags it ``slower_than_fp32``."""


def too_slow(job: Any, entry: dict[str, Any], verify: Any,
             figures: list[dict[str, Any]]) -> bool:
    """*job* is the remedy ladder's :class:`converters.fallback.Int8Job`, *verify* its verifier
    (its ``shapes`` are the model's input shapes). True (and said in the figures and progress)
    when *entry*'s host time is beyond :data:`MAX_SLOWDOWN` × the fp32 model's of the
    same format (the fp32 TFLite file when the profile builds one — Silero's 16x8 TFLite ran
    1.26 ms against 0.11 ms for fp32 TFLite but under twice its If-laden fp32 ONNX — else the
    fp32 ONNX), the two timed side by side in alternating rounds (:data:`SIDE_BY_SIDE_ROUNDS`)
    and compared on :data:`SIDE_BY_SIDE_PERCENTILE`: timed minutes apart on this shared host,
    the OCR detector's int16 ONNX came out at 1.6x fp32 on one run and 2.2x on another. Without
    the artifact file at hand, its verification p50 is compared with a fresh p50 of fp32."""
    shapes = getattr(verify, "shapes", None)
    p50 = (entry.get("host_latency_ms") or {}).get("p50")
    if shapes is None or p50 is None:
        return False
    from ._runners import open_runner
    from .feeds import sample_feed
    from .verify import host_latency_record

    first = sample_feed(job.inputs, 0, shapes)  # not zeros: Silero's sr=0 takes a dead branch
    same = job.path.with_name(f"model.fp32.{job.fmt}")
    runner = (open_runner("tflite", same, shapes, job.threads) if job.fmt == "tflite" and
              same.exists() else open_runner("onnx", job.fp32, shapes, job.threads, example=first))
    native = runner.prepare(first)
    made = job.path.parent / str(entry.get("file", ""))
    if entry.get("file") and made.exists():
        other = open_runner(job.fmt, made, shapes, job.threads, example=first)
        mine = other.prepare(first)
        p50, base = _side_by_side(lambda: other.invoke(mine), lambda: runner.invoke(native))
        figures[-1]["side_by_side"] = True
        figures[-1]["statistic"] = f"p{SIDE_BY_SIDE_PERCENTILE:g}"
    else:
        base = host_latency_record(lambda: runner.invoke(native), job.threads,
                                   job.threads)["p50"]
    figures[-1]["host_p50_ms"], figures[-1]["fp32_host_p50_ms"] = p50, base
    floor = SIDE_BY_SIDE_FLOOR_MS if figures[-1].get("side_by_side") else SLOWDOWN_FLOOR_MS
    if p50 <= MAX_SLOWDOWN * base or p50 - base < floor:
        return False
    figures[-1]["too_slow"] = True
    job.progress(f"{job.key}: fallback {figures[-1]['remedy']} passed but runs "
                 f"{p50 / base:.1f}x the fp32 model's host time ({p50:.4g} vs {base:.4g} ms): "
                 "not taken")
    return True


SIDE_BY_SIDE_ROUNDS = 3
"""Alternating timing rounds (after 2 warm-up calls each) of a remedy and its fp32 base."""
SIDE_BY_SIDE_ROUND_MS = 50.0
"""Each round runs the slower of the two for about this long (5 to 200 runs): 5 runs of a
0.1 ms model are a sample of scheduler noise — Silero op15's int16 ONNX against its fp32 ran
0.9x to 2.7x in repeated quiet 3 x 5 timings, 1.27x to 1.36x in 3 x 200."""


SIDE_BY_SIDE_PERCENTILE = 10.0
"""Each file's figure is the 10th percentile of its calls — the calls other work on the host did
not slow — not the median: beside a conversion in another process, Silero op15's fp32 TFLite
(0.04 ms, two threads) had medians of 0.035–0.29 ms and 10th percentiles of 0.032–0.041 ms
across six timings, and in a zoo run beside the other lane its median reached 1.5 ms, so its
18x-slower 16x8 file passed the guard at 0.6x."""


def _side_by_side(one: Callable[[], object], two: Callable[[], object]) -> tuple[float, float]:
    """The :data:`SIDE_BY_SIDE_PERCENTILE` figures (ms) of *one* and *two* over alternating
    rounds, so a busy host slows both."""
    from .verify import host_latency, measure_side_by_side

    slower = max(host_latency(one, runs=1, warmup=1)["p50"],
                 host_latency(two, runs=1, warmup=1)["p50"])
    runs = int(min(200, max(5, SIDE_BY_SIDE_ROUND_MS / max(slower, 1e-3))))
    got = measure_side_by_side({"remedy": one, "fp32": two}, runs=runs * SIDE_BY_SIDE_ROUNDS,
                               rounds=SIDE_BY_SIDE_ROUNDS, warmup=2,
                               percentile=SIDE_BY_SIDE_PERCENTILE)
    return got["remedy"], got["fp32"]
