"""The first steps for a ``.tflite`` source: its reference, the source shipped as it is, and the
source as fp32 ONNX for the profile's other artifacts.

The source file is the reference (run in the TFLite interpreter, in its own channels-last
layout) and ships as the artifact of its own precision (``tflite-fp16`` for a file with fp16
weights), verified against itself. Every other artifact the profile asks for is made by the one
build pipeline (:mod:`converters.pipeline`) from the source converted to ONNX by tf2onnx
(:mod:`converters.tflite_to_onnx`) and is held to the TFLite source's outputs; when that
conversion fails, they are left out with tf2onnx's cause and the source still ships.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError
from profiles import Artifact, Profile

from ._isolate import LeftOut
from ._runners import TfliteRunner
from .checks import verify_file
from .data import Dataset
from .feeds import sample_feed
from .load import load_model
from .loaded import LoadedModel
from .source_tflite import tflite_precision
from .steps import timed
from .tflite_to_onnx import tflite_to_onnx
from .verify import Reference, collect_outputs, host_threads

__all__ = ["TFLITE_AS_ONNX", "source_key", "tflite_as_onnx", "tflite_reference",
           "verify_tflite_source", "with_source"]

log = logging.getLogger(__name__)

TFLITE_AS_ONNX = "model.source.onnx"
"""Where the converted source sits in the bundle's work directory until it is dropped."""


def source_key(loaded: LoadedModel) -> str:
    """The artifact key the source file itself ships as: ``tflite-<precision of its tensors>``."""
    return f"tflite-{tflite_precision(Path(loaded.ref))}"


def with_source(profile: Profile, key: str) -> Profile:
    """*profile* with the source's own artifact *key* in it (the int8 remedies then do not make
    a second fp16 file when the source ships as fp16)."""
    if any(a.key == key for a in profile.artifacts):
        return profile
    fmt, precision = key.split("-", 1)
    return profile.model_copy(update={"artifacts": [*profile.artifacts,
                                                    Artifact(format=fmt, precision=precision)]})


def tflite_reference(loaded: LoadedModel, data: Dataset, profile: Profile, progress: Any
                     ) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]], Reference]:
    """The evaluation inputs, their per-sample shapes and the source's outputs on them."""
    inputs = {k: data.inputs[k] for k in loaded.input_names}
    shapes = {k: v for k, v in data.sample_shapes().items() if k in inputs}
    progress(f"running the source TFLite model on {len(next(iter(inputs.values())))} samples")
    with timed("reference"):
        source = TfliteRunner(Path(loaded.ref), shapes, host_threads(profile.runtime.threads))
        ref = Reference.of(collect_outputs(source.run, inputs, shapes=shapes),
                           [o["name"] for o in source.outputs], profile.fidelity,
                           sample_feed(inputs, 0, shapes), inputs)
    return inputs, shapes, ref


def verify_tflite_source(work: Path, loaded: LoadedModel, key: str,
                         inputs: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]],
                         ref: Reference, labels: np.ndarray | None, profile: Profile,
                         progress: Any) -> tuple[dict[str, Any] | None, list[LeftOut]]:
    """Copy the source as ``model.<precision>.tflite`` (*key*: :func:`source_key`) and verify
    it; its entry, or why not."""
    precision = key.split("-", 1)[1]
    shutil.copyfile(loaded.ref, work / f"model.{precision}.tflite")
    made = {"tool": "copy", "method": "source TFLite shipped as is"}
    progress(f"verifying {key}")
    with timed("verify", key):
        entry, result = verify_file(work, key, made, inputs, shapes, ref, labels, profile)
    if result.passed:
        return entry, []
    required = any(a.key == key and a.required for a in profile.artifacts)
    return None, [LeftOut(key, "verify", "ai_edge_litert", result.reason, [], required)]


def tflite_as_onnx(work: Path, loaded: LoadedModel, profile: Profile, wanted: list[str],
                   progress: Any) -> tuple[LoadedModel | None, dict[str, Any], list[LeftOut]]:
    """The source as an fp32 ONNX model (loaded) and how it was made; or, when tf2onnx fails,
    ``None`` and every *wanted* artifact left out with its cause."""
    progress("converting the TFLite source to ONNX (tf2onnx)")
    path = work / TFLITE_AS_ONNX
    try:
        made = tflite_to_onnx(Path(loaded.ref), path, profile.opset)
    except ConversionError as exc:
        required = {a.key for a in profile.artifacts if a.required}
        return None, {}, [LeftOut.from_error(key, "convert", "tf2onnx", exc,
                                             required=key in required) for key in wanted]
    return load_model(str(path), loaded.fixed_shapes), made, []
