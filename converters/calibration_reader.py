"""Calibration samples for onnxruntime's static quantizer, as many at a time as memory allows.

:class:`CalibrationReader` is onnxruntime's ``CalibrationDataReader`` over the samples, fed as
the model declares its inputs, with ``set_range`` for its strided calibration;
:func:`calibration_stride` says how many samples the calibrator may run at once
(:data:`CALIBRATION_BYTES`), from :func:`activation_bytes`, one sample's intermediate tensors.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .steps import record

__all__ = ["CALIBRATION_BYTES", "CalibrationReader", "activation_bytes", "calibration_stride"]


class CalibrationReader:
    """Calibration samples, one feed at a time as the model declares its inputs
    (:func:`converters.feeds.sample_feed`; onnxruntime's CalibrationDataReader)."""

    def __init__(self, calibration: dict[str, np.ndarray], model: Path) -> None:
        from ._shapes import onnx_input_shapes

        self._calibration, self._shapes = calibration, onnx_input_shapes(model)
        self._n = len(next(iter(calibration.values())))
        self._end = self._n
        self._feeds = self._iter(0, self._n)
        self._started: float | None = None  # the calibration's inference time (``timings``)

    def __len__(self) -> int:
        return self._n

    def first(self) -> dict[str, np.ndarray]:
        """The first sample's feed."""
        return next(self._iter(0, 1))

    def set_range(self, start_index: int, end_index: int) -> None:
        """Feed samples ``start_index:end_index`` next (onnxruntime's strided calibration)."""
        self._end = end_index
        self._feeds = self._iter(start_index, end_index)

    def _iter(self, start: int, end: int) -> Iterator[dict[str, np.ndarray]]:
        from .feeds import sample_feed

        for i in range(start, end):
            yield sample_feed(self._calibration, i, self._shapes)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed, or ``None`` when done (then the calibration's time is recorded)."""
        now = time.perf_counter()
        self._started = now if self._started is None else self._started
        feed = next(self._feeds, None)
        if feed is None and self._end == self._n and self._started > 0:
            record("calibrate", now - self._started)
            self._started = 0.0  # recorded once
        return feed


CALIBRATION_BYTES = 2 << 30
"""The intermediate tensors onnxruntime's calibrator may hold at once: it keeps every
intermediate tensor of the samples it runs in one go (12.9 GB for the OCR text detector's 24
samples at 480x640)."""


def calibration_stride(samples: int, sample_bytes: int | None) -> int:
    """How many samples onnxruntime's calibrator runs before it reduces their tensors to ranges
    or histograms: all of them when their intermediate tensors fit :data:`CALIBRATION_BYTES`,
    else the largest divisor of *samples* whose tensors fit (onnxruntime needs a divisor), at
    most 4 when the size is unknown. As few strides as fit: the histogram calibrators
    (percentile, entropy) extend the first stride's bins at its width, so a quiet first stride
    (Silero's silent chunks, in strides of 2) grew histograms past 18 GB."""
    most = 4 if sample_bytes is None else max(1, CALIBRATION_BYTES // max(sample_bytes, 1))
    return max(d for d in range(1, min(most, samples) + 1) if samples % d == 0)


def activation_bytes(model: Path, feed: dict[str, np.ndarray]) -> int | None:
    """The bytes of the intermediate tensors of one run of *model* on *feed* — measured: one
    onnxruntime run with every node output fetched, as the calibrator runs it (ONNX shape
    inference leaves Silero's STFT padding unknown) — or ``None`` when that run fails."""
    import onnx

    from ._tensor_probe import probe_session

    try:
        session = probe_session(onnx.load(str(model)))
        return sum(int(getattr(out, "nbytes", 0)) for out in session.run(None, feed))
    except Exception:  # noqa: BLE001 — an estimate: unknown is an answer
        return None
