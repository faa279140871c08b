"""The fp16 TFLite file that the float onnx2tf call makes anyway, kept for the int8 fallback.

onnx2tf's float call writes ``float32`` and ``float16`` from one Keras graph. A profile with
``tflite-fp32`` and ``tflite-int8`` ships no fp16, but when the int8 artifact fails its gate the
fp16 fallback needs exactly that file: converting it again cost a whole second float call (30 s
of a 157 s EfficientNet-Lite0 build on this host). So the float call's fp16 file is set aside
next to the fp32 ONNX as ``model.fp16.tflite.spare`` (with ``.json``: how it was made, and the
sha256 of the ONNX and of the calibration data it was converted with), and
:func:`take_spare` hands it to the fallback instead of converting when both still match. The
build removes every ``model.*`` file no artifact names, so an unused spare is never shipped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ._calib_memo import arrays_sha256
from ._util import file_sha256

__all__ = ["keep_spare", "spare_path", "take_spare"]


def spare_path(onnx_path: Path) -> Path:
    """Where the spare fp16 file of *onnx_path*'s conversion lives."""
    return onnx_path.with_name("model.fp16.tflite.spare")


def _fingerprint(onnx_path: Path, calibration: dict[str, np.ndarray]) -> dict[str, str]:
    return {"onnx": file_sha256(onnx_path), "calibration": arrays_sha256(calibration)}


def keep_spare(onnx_path: Path, made: Path, info: dict[str, Any],
               calibration: dict[str, np.ndarray]) -> None:
    """Move the float call's fp16 file *made* aside for :func:`take_spare`."""
    spare = spare_path(onnx_path)
    shutil.move(str(made), spare)
    meta = {"info": info, **_fingerprint(onnx_path, calibration)}
    spare.with_name(spare.name + ".json").write_text(json.dumps(meta))


def take_spare(onnx_path: Path, out: Path,
               calibration: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Move the spare fp16 file to *out* and return how it was made, or ``None`` when there is
    none for this ONNX file and calibration data."""
    spare = spare_path(onnx_path)
    meta_path = spare.with_name(spare.name + ".json")
    if not spare.is_file() or not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if {k: meta.get(k) for k in ("onnx", "calibration")} != _fingerprint(onnx_path, calibration):
        return None
    shutil.move(str(spare), out)
    meta_path.unlink()
    return {**meta["info"], "made_by": "the float call that made tflite-fp32 (not converted "
                                      "again)"}
