"""Calibrated tensor ranges shared by the ONNX quantizers of one process.

A profile's ONNX int8 artifact is quantized by one :class:`~converters.quantize_onnx.OnnxQuantizer`
and, when it fails its gate, its remedies by another (keep-float-N, sensitivity probes) and the
int16-activation remedy by a third — each in its own temp dir, so each calibrated again: the same
model, the same samples, the same method, the same ranges (onnxruntime's MinMax/Entropy/
Percentile ranges depend on neither per-channel, the excluded nodes, nor the activation type).
On EfficientNet-Lite0 with 24 samples that was 3 × ~2 s (×3 on a loaded host).

onnxruntime already caches ranges in a JSON file per quantizer (``calibration_cache_path``);
this memo keeps that file's text, keyed by the sha256 of the pre-processed model, of the
calibration arrays and the method, and writes it into a new quantizer's cache path before it
quantizes, so onnxruntime finds a cache hit. At most :data:`KEEP` entries are held.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ._util import file_sha256

__all__ = ["KEEP", "arrays_sha256", "ranges_key", "remember", "restore"]

KEEP = 4
_MEMO: OrderedDict[tuple[str, ...], str] = OrderedDict()


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of *arrays* (in their order)."""
    digest = hashlib.sha256()
    for name, arr in arrays.items():
        digest.update(f"{name}:{arr.dtype}:{arr.shape}".encode())
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def ranges_key(model: Path, calibration: dict[str, np.ndarray], method: str) -> tuple[str, ...]:
    """What the calibrated ranges depend on: the model file, the samples, the method."""
    return (file_sha256(model), arrays_sha256(calibration), method)


def restore(key: tuple[str, ...], cache: Path) -> bool:
    """Write the remembered ranges of *key* to *cache* (when it is not there); ``True`` if so."""
    text = _MEMO.get(key)
    if text is None or cache.exists():
        return False
    cache.write_text(text)
    _MEMO.move_to_end(key)
    return True


def remember(key: tuple[str, ...], cache: Path) -> None:
    """Keep the ranges onnxruntime wrote to *cache* for the next quantizer of *key*."""
    if key in _MEMO or not cache.is_file():
        return
    _MEMO[key] = cache.read_text()
    while len(_MEMO) > KEEP:
        _MEMO.popitem(last=False)
