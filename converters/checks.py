"""Verify one artifact file against the source's reference: the check every route shares.

:func:`verify_file` runs the artifact in its own runtime on the evaluation set, judges it with
the profile's fidelity gate (naming the first diverging op when it fails), times it on the host,
and returns the manifest entry; :class:`ArtifactCheck` binds what that needs, for the int8 gate's
remedies (:mod:`converters.fallback`). Used by :mod:`converters.pipeline` (ONNX and torch
sources) and :mod:`converters.pipeline_tflite` (TFLite sources).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError
from profiles import Profile

from ._isolate import runtime_tool
from ._runners import open_runner
from ._util import file_sha256, one_line
from .data import Dataset
from .divergence import diagnose
from .feeds import sample_feed, with_batch_axes
from .verify import (
    Reference,
    Verification,
    collect_outputs,
    compare,
    host_latency_record,
    host_threads,
)

__all__ = ["ArtifactCheck", "data_part", "verify_file"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArtifactCheck:
    """What verifying an artifact needs; ``check(key, converter)`` verifies one file."""

    work: Path
    inputs: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    ref: Reference
    labels: np.ndarray | None
    profile: Profile

    def __call__(self, key: str, converter: dict[str, Any],
                 remedy: bool = False) -> tuple[dict[str, Any], Verification]:
        return verify_file(self.work, key, converter, self.inputs, self.shapes, self.ref,
                           self.labels, self.profile, remedy)


def verify_file(work: Path, key: str, converter: dict[str, Any], inputs: dict[str, np.ndarray],
                shapes: dict[str, tuple[int, ...]], ref: Reference, labels: np.ndarray | None,
                profile: Profile, remedy: bool = False) -> tuple[dict[str, Any], Verification]:
    """Run and judge the artifact *key* in *work*; return its manifest entry and verdict. Only a
    pass is timed on the host (a failed entry never ships), only a failed artifact — not a
    failed remedy, of which only figures are kept — is diagnosed."""
    fmt, precision = key.split("-")
    path = work / f"model.{precision}.{fmt}"
    threads = host_threads(profile.runtime.threads)
    runner = open_runner(fmt, path, shapes, threads, ref.source())
    try:
        outs = collect_outputs(runner.run, inputs, shapes=shapes, carries=ref.carries)
    except ConversionError:
        raise
    except Exception as exc:  # loads, then the runtime refuses a sample: the file cannot ship
        cause = one_line(exc)
        raise ConversionError(f"{path.name} loads but fails on the evaluation data ({cause})",
                              stage="load", tool=runtime_tool(key), cause=cause) from exc
    result = compare(outs, ref, labels,
                     profile.budgets.max_accuracy_drop,
                     precision=converter.get("precision", precision), fidelity=profile.fidelity)
    if not result.passed and not remedy:
        result = diagnose(result, fmt, path, work / "model.fp32.onnx", inputs,
                          converter.get("precision", precision), profile.fidelity, shapes)
    latency = None
    if result.passed:
        native = runner.prepare(sample_feed(inputs, 0, shapes))
        latency = host_latency_record(lambda: runner.invoke(native), threads,
                                      profile.runtime.threads)
    log.info("%s: %s%s", key, result.reason,
             f", host p50 {latency['p50']:.3f} ms" if latency else "")
    entry = {"key": key, "format": fmt, "precision": precision, "file": path.name,
             "size_bytes": path.stat().st_size, "sha256": file_sha256(path),
             "inputs": with_batch_axes(runner.inputs, inputs, shapes), "outputs": runner.outputs,
             "verification": result.to_dict(), "host_latency_ms": latency, "converter": converter}
    return entry, result


def data_part(data: Dataset, calib_desc: str) -> dict[str, Any]:
    """The manifest's ``data`` part."""
    return {"ref": data.ref, "sha256": data.sha256, "samples": data.samples,
            "labels": data.labels is not None, "calibration": calib_desc,
            "synthetic": data.synthetic}
