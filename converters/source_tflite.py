"""An existing ``.tflite`` model as the source: shipped as it is, as the artifact of its own precision.

TFLite cannot be converted back to ONNX or re-exported here, so the bundle holds exactly one
artifact, ``tflite-<precision>`` (precision read from the file's tensors: int8 when it holds
quantized integer tensors, fp16 when it holds float16 weights, else fp32). It is verified
against itself (drift is 0 by construction) and against the labels when the data has them;
the profile's other artifacts are left out (manifest ``left_out``, stage ``convert``) with that
reason — fatal only when the profile marks one ``required``. Re-quantizing a float TFLite file
is not done (onnx2tf needs an ONNX graph).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError

from ._util import file_sha256, one_line
from .loaded import LoadedModel, fix_shapes

__all__ = ["load_tflite", "tflite_precision"]

log = logging.getLogger(__name__)


def load_tflite(path: Path, shapes: dict[str, tuple[int, ...]]) -> LoadedModel:
    """Read a .tflite file's inputs (names without ``serving_default_``/``:0``), shapes, dtypes."""
    from ._runners import _TFLITE_NAME

    interp = _interpreter(path)
    details = interp.get_input_details()
    names = tuple(_TFLITE_NAME.match(d["name"]).group(2) for d in details)  # type: ignore[union-attr]
    found = {n: tuple(int(s) if s > 0 else -1 for s in d.get("shape_signature", d["shape"]))
             for n, d in zip(names, details)}
    fixed = fix_shapes(path, found, shapes)
    found.update(fixed)
    dtypes = {n: _source_dtype(d) for n, d in zip(names, details)}
    outputs = tuple(d["name"] for d in interp.get_output_details())
    log.info("loaded TFLite %s: inputs %s, precision %s", path, found, tflite_precision(path))
    return LoadedModel("tflite", str(path), file_sha256(path), path, names, found, outputs,
                       dtypes, fixed)


def tflite_precision(path: Path) -> str:
    """``int8`` (quantized integer tensors), ``fp16`` (float16 tensors) or ``fp32``."""
    kinds = {np.dtype(t["dtype"]).name for t in _interpreter(path).get_tensor_details()}
    if kinds & {"int8", "uint8", "int16"}:
        return "int8"
    return "fp16" if "float16" in kinds else "fp32"


def _interpreter(path: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    from core.logs import native_stderr

    try:
        with native_stderr("tflite"):  # its XNNPACK INFO line: -v shows it
            interp = Interpreter(model_path=str(path))
            interp.allocate_tensors()
    except Exception as exc:  # litert raises ValueError/RuntimeError for bad flatbuffers
        raise ModelError(f"{path.name} is not a loadable TFLite model ({one_line(exc)}); "
                         "re-convert it") from exc
    return interp


def _source_dtype(detail: dict[str, Any]) -> str:
    """Data dtype for an input: float32 for quantized inputs (the runner quantizes them)."""
    dtype = np.dtype(detail["dtype"])
    scale = (detail.get("quantization") or (0.0, 0))[0]
    return "float32" if dtype.kind in "iu" and scale else dtype.name
