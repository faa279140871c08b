"""The stages that fill a bundle directory: align data, reference, recipe, export, verify.

:func:`build_artifacts` writes every artifact of the profile plus ``samples.npz`` into a
directory and returns the manifest's ``data``, ``reference``, ``recipe`` and ``artifacts``
parts; :mod:`converters.bundle` owns the directory, the id, the agent and the manifest file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import ConfigError, ModelError
from profiles import Profile

from ._runners import OnnxRunner, open_runner
from ._util import file_sha256, one_line, ort_cause
from .data import Dataset, save_board_samples
from .feeds import sample_feed, with_batch_axes
from .export_onnx import export_onnx, output_names_for, run_torch
from .export_tflite import export_tflite
from .load import LoadedModel
from .passes import apply_recipe
from .fallback import Int8Job, gate_int8, int8_quantization, make_onnx_int8
from .quantize_onnx import convert_fp16
from .divergence import diagnose
from .verify import (Reference, Verification, check_verifications, collect_outputs, compare,
                     flag_slower_than_fp32, host_latency_record, host_threads, reference_accuracy)

__all__ = ["align_data", "build_artifacts"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def align_data(loaded: LoadedModel, data: Dataset) -> Dataset:
    """Key *data* by the model's input names (``input`` for a one-input torch model) and fix how
    each input's samples feed the model (:mod:`converters.feeds`); one-line ConfigError if not."""
    if loaded.is_torch:
        if len(data.names) == 1:
            return data.renamed({data.names[0]: "input"}).aligned(loaded.declared_shapes)
        return data.aligned(dict(loaded.input_shapes))
    names = list(loaded.input_names)
    if len(names) == 1 and len(data.names) == 1:
        data = data.renamed({data.names[0]: names[0]})
    if sorted(data.names) != sorted(names):
        raise ConfigError(f"data inputs {data.names} do not match the model inputs {names}; "
                          "key each array by the model's input name")
    return data.aligned(loaded.input_shapes, loaded.input_dtypes)


def build_artifacts(work: Path, loaded: LoadedModel, data: Dataset, profile: Profile,
                    progress: Progress) -> dict[str, Any]:
    """Write the profile's artifacts and ``samples.npz`` into *work*; return manifest parts."""
    if loaded.kind == "tflite":  # shipped as it is: one artifact, verified against itself
        from .source_tflite import build_tflite_artifacts

        return build_tflite_artifacts(work, loaded, data, profile, progress)
    inputs = {k: data.inputs[k] for k in _input_order(loaded, data)}
    shapes = {k: v for k, v in data.sample_shapes().items() if k in inputs}
    progress(f"running the original model on {min(len(v) for v in inputs.values())} samples")
    ref = Reference.of(*_reference(loaded, inputs, shapes, host_threads(profile.runtime.threads)),
                       fidelity=profile.fidelity, feed=sample_feed(inputs, 0, shapes))
    model, recipe = loaded.model, []  # recipe: each step's options and what it changed
    if profile.recipe:
        progress(f"applying recipe: {', '.join(s.name for s in profile.recipe)}")
        model = apply_recipe(model, profile.recipe, data, recipe)
    calib, calib_desc = data.calibration_set()
    calib = {k: calib[k] for k in inputs}
    makers = _make_artifacts(work, loaded, model, inputs, shapes, calib, ref.names, profile,
                             progress)
    if profile.recipe:  # fp32 artifacts are held to the model they were converted from
        ref = ref.with_conversion(collect_outputs(lambda feed: run_torch(model, feed), inputs,
                                                  shapes=shapes))
    artifacts, results = [], {}
    for art in profile.artifacts:
        progress(f"verifying {art.key}")
        entry, results[art.key] = _verify(work, art.key, makers[art.key], inputs, shapes, ref,
                                          data.labels, profile)
        if art.precision == "int8":  # over budget: per-channel, keep layers float, fp16
            entry, results[art.key] = gate_int8(
                Int8Job.for_artifact(work, art, calib, inputs, host_threads(profile.runtime.threads),
                                     progress),
                entry, results[art.key], lambda conv, key=art.key: _verify(
                    work, key, conv, inputs, shapes, ref, data.labels, profile))
        artifacts.append(entry)
    for key in flag_slower_than_fp32(artifacts):
        progress(f"warning: {key} is slower than fp32 on this host (see host_latency_ms)")
    check_verifications(results, profile.budgets.max_accuracy_drop)
    if "onnx-fp32" not in {a.key for a in profile.artifacts}:  # only the others' source
        (work / "model.fp32.onnx").unlink(missing_ok=True)
    save_board_samples(work / "samples.npz", inputs)
    return {"data": _data_part(data, calib_desc), "reference": {
        "accuracy": reference_accuracy(ref, data.labels)}, "artifacts": artifacts,
        "recipe": recipe}


def _input_order(loaded: LoadedModel, data: Dataset) -> list[str]:
    return list(loaded.input_names) if not loaded.is_torch else data.names


def _reference(loaded: LoadedModel, inputs: dict[str, np.ndarray],
               shapes: dict[str, tuple[int, ...]], threads: int) -> tuple[list[np.ndarray], list[str]]:
    if not loaded.is_torch:
        return _reference_onnx(loaded, inputs, shapes, threads), list(loaded.output_names)
    try:
        ref = collect_outputs(lambda feed: run_torch(loaded.model, feed), inputs, shapes=shapes)
    except Exception as exc:  # user model failing on the data: wrong shapes, dtypes, ...
        raise ModelError(f"the model fails on the data's inputs ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}); check input shapes and "
                         "layout") from exc
    return ref, output_names_for(ref)


def _reference_onnx(loaded: LoadedModel, inputs: dict[str, np.ndarray],
                    shapes: dict[str, tuple[int, ...]], threads: int) -> list[np.ndarray]:
    name = Path(loaded.ref).name
    try:
        runner = OnnxRunner(loaded.model, shapes, threads)
    except Exception as exc:  # onnxruntime refusing the source model itself
        raise ModelError(f"onnxruntime cannot run {name} ({ort_cause(exc)}); check that the model "
                         "runs in onnxruntime as it is") from exc
    try:
        return collect_outputs(runner.run, inputs, shapes=shapes)
    except Exception as exc:  # the data's values or dtypes are not what the model accepts
        raise ConfigError(f"{name} fails on the data's inputs ({ort_cause(exc)}); give inputs it "
                          "accepts with --data (synthetic inputs are floats in [0, 1) and integers "
                          "1)") from exc


def _make_artifacts(work: Path, loaded: LoadedModel, model: Any, inputs: dict[str, np.ndarray],
                    shapes: dict[str, tuple[int, ...]], calib: dict[str, np.ndarray],
                    out_names: list[str], profile: Profile,
                    progress: Progress) -> dict[str, dict[str, Any]]:
    """Export fp32 ONNX, then every other artifact from it; return how each was made."""
    fp32 = work / "model.fp32.onnx"
    progress("exporting ONNX fp32")
    example = sample_feed(inputs, 0, shapes)
    made = {"onnx-fp32": export_onnx(replace(loaded, model=model), example, fp32, profile.opset,
                                     out_names)}
    if loaded.fixed_shapes:  # --input-shape: static dims for runtimes/converters that need them
        from ._shapes import fix_onnx_input_shapes

        made["onnx-fp32"]["input_shapes_fixed"] = fix_onnx_input_shapes(fp32, loaded.fixed_shapes)
    keys = {a.key for a in profile.artifacts}
    if "onnx-int8" in keys:
        progress("quantizing ONNX int8")
        made["onnx-int8"] = make_onnx_int8(fp32, work / "model.int8.onnx", calib,
                                           int8_quantization(profile, "onnx"), inputs,
                                           profile.runtime.threads, progress)
    if "onnx-fp16" in keys:
        progress("converting ONNX fp16")
        made["onnx-fp16"] = convert_fp16(fp32, work / "model.fp16.onnx")
    tflite = [a.precision for a in profile.artifacts if a.format == "tflite"]
    if tflite:
        progress(f"converting to TFLite ({', '.join(tflite)})")
        for precision, info in export_tflite(fp32, work, tflite, calib,
                                             int8_quantization(profile, "tflite")).items():
            made[f"tflite-{precision}"] = info
    return made


def _verify(work: Path, key: str, converter: dict[str, Any], inputs: dict[str, np.ndarray],
            shapes: dict[str, tuple[int, ...]], ref: Reference, labels: np.ndarray | None,
            profile: Profile) -> tuple[dict[str, Any], Verification]:
    fmt, precision = key.split("-")
    path = work / f"model.{precision}.{fmt}"
    threads = host_threads(profile.runtime.threads)
    runner = open_runner(fmt, path, shapes, threads, ref.source())
    result = compare(collect_outputs(runner.run, inputs, shapes=shapes), ref, labels,
                     profile.budgets.max_accuracy_drop,
                     precision=converter.get("precision", precision), fidelity=profile.fidelity)
    if not result.passed:
        result = diagnose(result, fmt, path, work / "model.fp32.onnx", inputs,
                          converter.get("precision", precision), profile.fidelity, shapes)
    native = runner.prepare(sample_feed(inputs, 0, shapes))
    latency = host_latency_record(lambda: runner.invoke(native), threads, profile.runtime.threads)
    log.info("%s: %s, host p50 %.3f ms", key, result.reason, latency["p50"])
    entry = {"key": key, "format": fmt, "precision": precision, "file": path.name,
             "size_bytes": path.stat().st_size, "sha256": file_sha256(path),
             "inputs": with_batch_axes(runner.inputs, inputs, shapes), "outputs": runner.outputs,
             "verification": result.to_dict(), "host_latency_ms": latency, "converter": converter}
    return entry, result


def _data_part(data: Dataset, calib_desc: str) -> dict[str, Any]:
    return {"ref": data.ref, "sha256": data.sha256, "samples": data.samples,
            "labels": data.labels is not None, "calibration": calib_desc,
            "synthetic": data.synthetic}
