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
from ._util import file_sha256
from .data import Dataset
from .export_onnx import export_onnx, output_names_for, run_torch
from .export_tflite import export_tflite
from .load import LoadedModel
from .passes import apply_recipe
from .fallback import Int8Job, gate_int8, int8_quantization, make_onnx_int8
from .quantize_onnx import convert_fp16
from .verify import (Verification, check_verifications, collect_outputs, compare,
                     flag_slower_than_fp32, host_latency, reference_accuracy)

__all__ = ["MAX_BUNDLE_SAMPLES", "align_data", "build_artifacts"]

log = logging.getLogger(__name__)

MAX_BUNDLE_SAMPLES = 32
Progress = Callable[[str], None]


def align_data(loaded: LoadedModel, data: Dataset) -> Dataset:
    """Key *data* by the model's input names (``input`` for a one-input torch model); check shapes."""
    if loaded.is_torch:
        return data.renamed({data.names[0]: "input"}) if len(data.names) == 1 else data
    names = list(loaded.input_names)
    if len(names) == 1 and len(data.names) == 1:
        data = data.renamed({data.names[0]: names[0]})
    if sorted(data.names) != sorted(names):
        raise ConfigError(f"data inputs {data.names} do not match the model inputs {names}; "
                          "key each array by the model's input name")
    for name in names:
        _check_shape(name, loaded.input_shapes[name], data.inputs[name].shape)
    return data


def build_artifacts(work: Path, loaded: LoadedModel, data: Dataset, profile: Profile,
                    progress: Progress) -> dict[str, Any]:
    """Write the profile's artifacts and ``samples.npz`` into *work*; return manifest parts."""
    if loaded.kind == "tflite":  # shipped as it is: one artifact, verified against itself
        from .source_tflite import build_tflite_artifacts

        return build_tflite_artifacts(work, loaded, data, profile, progress)
    inputs = {k: data.inputs[k] for k in _input_order(loaded, data)}
    shapes = {k: (1, *v.shape[1:]) for k, v in inputs.items()}
    progress(f"running the original model on {min(len(v) for v in inputs.values())} samples")
    ref, out_names = _reference(loaded, inputs, shapes, profile.runtime.threads)
    model, recipe = loaded.model, []  # recipe: each step's options and what it changed
    if profile.recipe:
        progress(f"applying recipe: {', '.join(s.name for s in profile.recipe)}")
        model = apply_recipe(model, profile.recipe, data, recipe)
    calib, calib_desc = data.calibration_set()
    calib = {k: calib[k] for k in inputs}
    makers = _make_artifacts(work, loaded, model, inputs, calib, out_names, profile, progress)
    artifacts, results = [], {}
    for art in profile.artifacts:
        progress(f"verifying {art.key}")
        entry, results[art.key] = _verify(work, art.key, makers[art.key], inputs, shapes, ref,
                                          data.labels, profile)
        if art.precision == "int8":  # over budget: per-channel, keep layers float, fp16
            entry, results[art.key] = gate_int8(
                Int8Job.for_artifact(work, art, calib, inputs, profile.runtime.threads, progress),
                entry, results[art.key], lambda conv, key=art.key: _verify(
                    work, key, conv, inputs, shapes, ref, data.labels, profile))
        artifacts.append(entry)
    flag_slower_than_fp32(artifacts)  # it logs each one once (edgeship.logs)
    check_verifications(results, profile.budgets.max_accuracy_drop)
    if "onnx-fp32" not in {a.key for a in profile.artifacts}:  # only the others' source
        (work / "model.fp32.onnx").unlink(missing_ok=True)
    np.savez(work / "samples.npz", **{k: v[:MAX_BUNDLE_SAMPLES] for k, v in inputs.items()})
    return {"data": _data_part(data, calib_desc), "reference": {
        "accuracy": reference_accuracy(ref, data.labels)}, "artifacts": artifacts,
        "recipe": recipe}


def _input_order(loaded: LoadedModel, data: Dataset) -> list[str]:
    return list(loaded.input_names) if not loaded.is_torch else data.names


def _check_shape(name: str, model_shape: tuple[int, ...], data_shape: tuple[int, ...]) -> None:
    expected = tuple(model_shape[1:])
    got = tuple(data_shape[1:])
    ok = len(expected) == len(got) and all(e in (-1, g) for e, g in zip(expected, got))
    if not ok:
        raise ConfigError(f"data input {name!r} has per-sample shape {got} but the model "
                          f"expects {list(model_shape)}; check the data file's layout")


def _reference(loaded: LoadedModel, inputs: dict[str, np.ndarray],
               shapes: dict[str, tuple[int, ...]], threads: int) -> tuple[list[np.ndarray], list[str]]:
    if not loaded.is_torch:
        runner = OnnxRunner(loaded.model, shapes, threads)
        return collect_outputs(runner.run, inputs), list(loaded.output_names)
    try:
        ref = collect_outputs(lambda feed: run_torch(loaded.model, feed), inputs)
    except Exception as exc:  # user model failing on the data: wrong shapes, dtypes, ...
        raise ModelError(f"the model fails on the data's inputs ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}); check input shapes and "
                         "layout") from exc
    return ref, output_names_for(ref)


def _make_artifacts(work: Path, loaded: LoadedModel, model: Any, inputs: dict[str, np.ndarray],
                    calib: dict[str, np.ndarray], out_names: list[str], profile: Profile,
                    progress: Progress) -> dict[str, dict[str, Any]]:
    """Export fp32 ONNX, then every other artifact from it; return how each was made."""
    fp32 = work / "model.fp32.onnx"
    progress("exporting ONNX fp32")
    example = {k: v[:1] for k, v in inputs.items()}
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
            shapes: dict[str, tuple[int, ...]], ref: list[np.ndarray], labels: np.ndarray | None,
            profile: Profile) -> tuple[dict[str, Any], Verification]:
    fmt, precision = key.split("-")
    path = work / f"model.{precision}.{fmt}"
    runner = open_runner(fmt, path, shapes, profile.runtime.threads)
    result = compare(collect_outputs(runner.run, inputs), ref, labels,
                     profile.budgets.max_accuracy_drop)
    native = runner.prepare({k: v[:1] for k, v in inputs.items()})
    latency = host_latency(lambda: runner.invoke(native))
    log.info("%s: %s, host p50 %.3f ms", key, result.reason, latency["p50"])
    entry = {"key": key, "format": fmt, "precision": precision, "file": path.name,
             "size_bytes": path.stat().st_size, "sha256": file_sha256(path),
             "inputs": runner.inputs, "outputs": runner.outputs,
             "verification": result.to_dict(), "host_latency_ms": latency, "converter": converter}
    return entry, result


def _data_part(data: Dataset, calib_desc: str) -> dict[str, Any]:
    return {"ref": data.ref, "sha256": data.sha256, "samples": data.samples,
            "labels": data.labels is not None, "calibration": calib_desc,
            "synthetic": data.synthetic}
