"""An existing ``.tflite`` model as the source: shipped as it is, as the artifact of its own precision.

TFLite cannot be converted back to ONNX or re-exported here, so the bundle holds exactly one
artifact, ``tflite-<precision>`` (precision read from the file's tensors: int8 when it holds
quantized integer tensors, fp16 when it holds float16 weights, else fp32). It is verified
against itself (drift is 0 by construction) and against the labels when the data has them;
the profile's other artifacts are listed in the manifest as skipped. Re-quantizing a float
TFLite file is not done (onnx2tf needs an ONNX graph).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import ModelError
from profiles import Profile

from ._util import file_sha256, one_line
from .data import Dataset
from .load import LoadedModel, fix_shapes

__all__ = ["build_tflite_artifacts", "load_tflite", "tflite_precision"]

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


def build_tflite_artifacts(work: Path, loaded: LoadedModel, data: Dataset, profile: Profile,
                           progress: Any) -> dict[str, Any]:
    """Copy the source as ``model.<precision>.tflite``, verify it; return manifest parts."""
    from ._build import MAX_BUNDLE_SAMPLES, _data_part, _verify
    from .verify import check_verifications, collect_outputs, reference_accuracy

    precision = tflite_precision(Path(loaded.ref))
    key = f"tflite-{precision}"
    shutil.copyfile(loaded.ref, work / f"model.{precision}.tflite")
    inputs = {k: data.inputs[k] for k in loaded.input_names}
    shapes = {k: (1, *v.shape[1:]) for k, v in inputs.items()}
    progress(f"running the source TFLite model on {len(next(iter(inputs.values())))} samples")
    from ._runners import TfliteRunner

    ref = collect_outputs(TfliteRunner(Path(loaded.ref), shapes, profile.runtime.threads).run, inputs)
    skipped = [a.key for a in profile.artifacts if a.key != key]
    if skipped:
        log.warning("a .tflite source ships as %s only; skipped %s", key, ", ".join(skipped))
    made = {"tool": "copy", "method": "source TFLite shipped as is", "skipped": skipped}
    progress(f"verifying {key}")
    entry, result = _verify(work, key, made, inputs, shapes, ref, data.labels, profile)
    check_verifications({key: result}, profile.budgets.max_accuracy_drop)
    np.savez(work / "samples.npz", **{k: v[:MAX_BUNDLE_SAMPLES] for k, v in inputs.items()})
    desc = "none (TFLite source shipped as is, not re-quantized)"
    return {"data": _data_part(data, desc), "artifacts": [entry],
            "reference": {"accuracy": reference_accuracy(ref, data.labels)}}


def _interpreter(path: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    from edgeship.logs import native_stderr

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
