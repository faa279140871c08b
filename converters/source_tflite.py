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
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import ModelError
from profiles import Profile

from ._util import file_sha256, one_line
from .data import Dataset
from .load import LoadedModel, fix_shapes
from .steps import timed

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
    from ._build import _data_part, _verify
    from ._isolate import LeftOut, check_survivors
    from .data import save_board_samples
    from .feeds import sample_feed
    from .verify import Reference, collect_outputs, host_threads, reference_accuracy

    precision = tflite_precision(Path(loaded.ref))
    key = f"tflite-{precision}"
    shutil.copyfile(loaded.ref, work / f"model.{precision}.tflite")
    inputs = {k: data.inputs[k] for k in loaded.input_names}
    shapes = {k: v for k, v in data.sample_shapes().items() if k in inputs}
    progress(f"running the source TFLite model on {len(next(iter(inputs.values())))} samples")
    from ._runners import TfliteRunner

    source = TfliteRunner(Path(loaded.ref), shapes, host_threads(profile.runtime.threads))
    ref = Reference.of(collect_outputs(source.run, inputs, shapes=shapes),
                       [o["name"] for o in source.outputs], profile.fidelity,
                       sample_feed(inputs, 0, shapes))
    left = [LeftOut(a.key, "convert", "edgeship", f"a .tflite source ships as itself ({key}); "
                    f"it cannot be converted to {a.key} here", [], a.required)
            for a in profile.artifacts if a.key != key]
    if left:
        log.warning("a .tflite source ships as %s only; left out %s", key,
                    ", ".join(lo.key for lo in left))
    made = {"tool": "copy", "method": "source TFLite shipped as is"}
    progress(f"verifying {key}")
    with timed("verify", key):
        entry, result = _verify(work, key, made, inputs, shapes, ref, data.labels, profile)
    required = any(a.key == key and a.required for a in profile.artifacts)
    if not result.passed:
        left.insert(0, LeftOut(key, "verify", "ai_edge_litert", result.reason, [], required))
    check_survivors(int(result.passed), left)
    save_board_samples(work / "samples.npz", inputs)
    desc = "none (TFLite source shipped as is, not re-quantized)"
    return {"data": _data_part(data, desc), "artifacts": [entry],
            "reference": {"accuracy": reference_accuracy(ref, data.labels)},
            "left_out": [lo.to_dict() for lo in left]}


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
