"""A substitute for an int8 artifact that could not be made or loaded at all.

When the quantizer or converter fails (onnxruntime's quantizer finds nothing it can quantize,
onnx2tf's int8 call crashes, the int8 file does not load), the artifact gets the same ladder as
one that failed its gate (:func:`converters.fallback.substitute_int8`): int8 remedies first, then
fp16 under its true name (``<format>-fp16``, ``requested: <format>-int8``) unless the profile
says ``quantization.fallback_fp16: false`` (or ``fallback: false``). The int8 stays in
``left_out`` with its own stage and one-line cause, the remedies appended to ``tried`` and
``delivered_instead`` naming what shipped in its place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ._isolate import LeftOut
from .fallback import Int8Job, fallbacks_said, substitute_int8
from .verify import host_threads

__all__ = ["pending_substitutes", "substitute"]

SUBSTITUTABLE_STAGES = ("quantize", "convert", "load")
"""Stages before verification at which an int8 artifact can fail and still get remedies."""


def pending_substitutes(left: list[LeftOut], profile: Any) -> list[LeftOut]:
    """The int8 artifacts of *left* (not made, or not loadable) whose remedies may still deliver
    something: they count as possible survivors until they are tried."""
    keys = {a.key for a in profile.artifacts if a.precision == "int8"
            and (a.quantization is None or a.quantization.fallback)}
    return [lo for lo in left if lo.key in keys and lo.stage in SUBSTITUTABLE_STAGES]


def substitute(art: Any, lost: LeftOut, check: Any, calib: dict[str, np.ndarray],
               progress: Callable[[str], None], left: list[LeftOut] = ()
               ) -> tuple[dict[str, Any] | None, list[LeftOut]]:
    """Run the remedies for *art* (left out as *lost*) with *check* (``check(key, converter)``
    verifies a file in ``check.work``); return the entry that shipped (or ``None``) and what
    stays in ``left_out`` for it. *left*: the build's other left-out artifacts (a TFLite fp32
    that could not be made or loaded means its fp16, from the same float conversion, is not
    tried)."""
    job = Int8Job.for_artifact(check.work, art, calib, check.inputs,
                               host_threads(check.profile.runtime.threads), progress,
                               tuple(a.key for a in check.profile.artifacts),
                               arch=check.profile.arch)
    float_lost = next((lo for lo in left if lo.key == f"{art.format}-fp32"
                       and lo.stage in SUBSTITUTABLE_STAGES), None)
    if art.format == "tflite" and float_lost is not None:
        why = f"{float_lost.key} failed at {float_lost.stage}"
        job = replace(job, no_reconversion=f"{why}: the graph does not convert",
                      no_fp16=job.no_fp16 or f"{why} and fp16 comes from the same float "
                                             "conversion")
    taken, tried, figures = substitute_int8(job, lost.cause, check)
    every = [*lost.tried, *tried]
    if taken is None:
        cause = f"{lost.cause}; {fallbacks_said(tried, figures)}" if tried else lost.cause
        if job.no_fp16 is not None and (job.quantization is None or job.quantization.fallback):
            cause += f"; fp16 not tried: {job.no_fp16}"
        return None, [replace(lost, cause=cause, tried=every, figures=figures if tried else [])]
    entry = taken[0]
    if entry["key"] == art.key:  # an int8 remedy made it: nothing is left out
        return entry, []
    return entry, [replace(lost, tried=every, delivered_instead=entry["key"])]
