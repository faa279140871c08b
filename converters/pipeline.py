"""The one build pipeline: align data, reference, recipe, export, make, load-check, verify.

:func:`build_artifacts` writes the profile's artifacts plus ``samples.npz`` into a directory
and returns the manifest's ``data``, ``reference``, ``recipe``, ``artifacts`` and ``left_out``
parts; :mod:`converters.bundle` owns the directory, the id, the board files and the manifest
file, and :mod:`converters.sweep` (``edgeship compare``) prepares, makes and verifies with the
same functions (:func:`prepare_reference`, the makers, the fidelity gate).

Each artifact is isolated (:mod:`converters._isolate`): it is made (quantize / convert), loaded in
its runtime right away (cheap), and only then verified with its int8 remedies (expensive); a
failure at any stage leaves that artifact out with its reason, and the others go on. The fp32
ONNX export is the source of every other artifact, so its failure still fails the bundle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, ConversionError, ModelError
from profiles import Artifact, Profile

from ._isolate import LeftOut, check_survivors, make_tool, runtime_tool
from ._runners import OnnxRunner, open_runner
from ._substitute import pending_substitutes, substitute
from ._util import ort_cause
from .checks import ArtifactCheck, data_part
from .data import Dataset, save_board_samples, synthetic_dataset
from .export_onnx import export_onnx, output_names_for, run_torch
from .fallback import Int8Job, gate_int8, make_onnx_int8
from .feeds import sample_feed
from .int8_options import int8_quantization
from .loaded import LoadedModel
from .passes import apply_recipe
from .pipeline_tflite import (
    source_key,
    tflite_as_onnx,
    tflite_reference,
    verify_tflite_source,
    with_source,
)
from .quantize_fp16 import convert_fp16
from .steps import timed
from .tflite_routes import make_tflite
from .verify import (
    Reference,
    collect_outputs,
    flag_slower_than_fp32,
    host_threads,
    reference_accuracy,
)

__all__ = ["align_data", "build_artifacts", "prepare_reference", "synthetic_for"]

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
    shipped: list[dict[str, Any]] = []  # a TFLite source, shipped as it is
    left: list[LeftOut] = []
    converted = None  # how the source became the fp32 ONNX the artifacts are made from
    if loaded.kind == "tflite":
        key = source_key(loaded)  # reads the file's tensors: once
        inputs, shapes, ref = tflite_reference(loaded, data, profile, progress)
        entry, left = verify_tflite_source(work, loaded, key, inputs, shapes, ref, data.labels,
                                           profile, progress)
        shipped += [entry] if entry is not None else []
        rest = [a for a in profile.artifacts if a.key != key]
        as_onnx = None
        if rest:
            as_onnx, converted, lost = tflite_as_onnx(work, loaded, profile,
                                                      [a.key for a in rest], progress)
            left += lost
        if as_onnx is None:
            return _finish(work, data, "none (TFLite source shipped as is)", ref, inputs,
                           shipped, left, profile, progress)
        whole = with_source(profile, key)
        loaded, asked = as_onnx, profile.model_copy(update={"artifacts": rest})
    else:
        inputs, shapes, ref = prepare_reference(loaded, data, profile, progress)
        asked = whole = profile
    model, recipe = loaded.model, []  # recipe: each step's options and what it changed
    if profile.recipe:
        progress(f"applying recipe: {', '.join(s.name for s in profile.recipe)}")
        with timed("recipe"):
            model = apply_recipe(model, profile.recipe, data, recipe)
    calib, calib_desc = data.calibration_set()
    calib = {k: calib[k] for k in inputs}
    made, lost = _make_artifacts(work, loaded, model, inputs, shapes, calib, ref.names, asked,
                                 progress, converted)
    left += lost
    if profile.recipe:  # fp32 artifacts are held to the model they were converted from
        ref = ref.with_conversion(collect_outputs(lambda feed: run_torch(model, feed), inputs,
                                                  shapes=shapes, carries=ref.carries))
    pending = pending_substitutes(left, asked)  # int8 not made: its remedies may deliver
    check_survivors(len(shipped) + len(made) + len(pending),
                    [lo for lo in left if lo not in pending])
    check = ArtifactCheck(work, inputs, shapes, ref, data.labels, whole)  # all keys: fp16 remedy
    artifacts = list(shipped)
    for art in asked.artifacts:
        if art.key in made:
            with timed("verify", art.key):
                entry, lost = _verify_artifact(art, made[art.key], check, calib, progress)
            artifacts += [entry] if entry is not None else []
            left += lost
        elif (gone := next((lo for lo in pending if lo.key == art.key), None)) is not None:
            entry, lost = substitute(art, gone, check, calib, progress, left)
            artifacts += [entry] if entry is not None else []
            left = [lo for lo in left if lo is not gone] + lost
    flag_slower_than_fp32(artifacts)  # it logs each one once (core.logs)
    return _finish(work, data, calib_desc, ref, inputs, artifacts, left, profile, progress,
                   recipe)


def _finish(work: Path, data: Dataset, calib_desc: str, ref: Reference,
            inputs: dict[str, np.ndarray], artifacts: list[dict[str, Any]], left: list[LeftOut],
            profile: Profile, progress: Progress,
            recipe: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Say what was left out, fail when nothing survived, drop unshipped files, write the
    board's samples; return the manifest parts."""
    for item in left:
        progress(f"left out {item.line()}")
    check_survivors(len(artifacts), left)
    _drop_unshipped(work, artifacts)
    save_board_samples(work / "samples.npz", inputs)
    return {"data": data_part(data, calib_desc), "reference": {
        "accuracy": reference_accuracy(ref, data.labels)}, "artifacts": artifacts,
        "recipe": recipe or [], "left_out": [lo.to_dict() for lo in _in_profile_order(left, profile)]}


def prepare_reference(loaded: LoadedModel, data: Dataset, profile: Profile, progress: Progress
            ) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]], Reference]:
    """The evaluation inputs in the model's order, their per-sample shapes, and the source's
    reference outputs on them (one-line ModelError/ConfigError when the source fails on them)."""
    order = list(loaded.input_names) if not loaded.is_torch else data.names
    inputs = {k: data.inputs[k] for k in order}
    shapes = {k: v for k, v in data.sample_shapes().items() if k in inputs}
    progress(f"running the original model on {min(len(v) for v in inputs.values())} samples")
    with timed("reference"):
        ref = Reference.of(*_reference(loaded, inputs, shapes,
                                       host_threads(profile.runtime.threads)),
                           fidelity=profile.fidelity, feed=sample_feed(inputs, 0, shapes),
                           inputs=inputs)
    return inputs, shapes, ref


def synthetic_for(loaded: LoadedModel) -> Dataset:
    """Synthetic inputs for *loaded* (no data file), with the one warning that says so."""
    data = synthetic_dataset(loaded.declared_shapes, dtypes=loaded.input_dtypes)
    log.warning("no data file for %s: verifying on %d synthetic random inputs (drift only, no "
                "accuracy); int8 calibration will not be representative", loaded.ref, data.samples)
    return data


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
    return ref, output_names_for(ref, loaded.model)


def _reference_onnx(loaded: LoadedModel, inputs: dict[str, np.ndarray],
                    shapes: dict[str, tuple[int, ...]], threads: int) -> list[np.ndarray]:
    name = Path(loaded.ref).name
    refused = ConfigError  # the data's values or dtypes are not what the model accepts
    try:
        runner = OnnxRunner(loaded.model, shapes, threads, example=sample_feed(inputs, 0, shapes))
        return collect_outputs(runner.run, inputs, shapes=shapes)
    except Exception as exc:
        if not _runs_on_zeros(loaded.model, shapes, threads):
            refused = ModelError  # nor on zeros: onnxruntime refuses the source model itself
        cause = exc
    if refused is ModelError:
        raise ModelError(f"onnxruntime cannot run {name} ({ort_cause(cause)}); check that the "
                         "model runs in onnxruntime as it is") from cause
    raise ConfigError(f"{name} fails on the data's inputs ({ort_cause(cause)}); give inputs it "
                      "accepts with --data (synthetic inputs are floats in [0, 1) and integers "
                      "1)") from cause


def _runs_on_zeros(model: Any, shapes: dict[str, tuple[int, ...]], threads: int) -> bool:
    try:
        OnnxRunner(model, shapes, threads)  # its first inference is on zeros
    except Exception:  # onnxruntime's own error types: a model it cannot load or run at all
        return False
    return True


def _make_artifacts(work: Path, loaded: LoadedModel, model: Any, inputs: dict[str, np.ndarray],
                    shapes: dict[str, tuple[int, ...]], calib: dict[str, np.ndarray],
                    out_names: list[str], profile: Profile, progress: Progress,
                    converted: dict[str, Any] | None = None
                    ) -> tuple[dict[str, dict[str, Any]], list[LeftOut]]:
    """Export fp32 ONNX, then every other artifact from it, each on its own and load-checked
    right away (cheap), ONNX before TFLite; return how each was made, and the ones left out."""
    fp32 = work / "model.fp32.onnx"
    progress("exporting ONNX fp32")
    example = sample_feed(inputs, 0, shapes)
    source = export_onnx(replace(loaded, model=model), example, fp32, profile.opset, out_names)
    if converted:  # a TFLite source: the fp32 ONNX is tf2onnx's, not a copy of the user's file
        source = dict(converted)
    if loaded.fixed_shapes:  # --input-shape: static dims for runtimes/converters that need them
        from ._shapes import fix_onnx_input_shapes

        source["input_shapes_fixed"] = fix_onnx_input_shapes(fp32, loaded.fixed_shapes)
    made: dict[str, dict[str, Any]] = {}
    left: list[LeftOut] = []
    for art, stage, make in _makers(work, calib, inputs, profile, progress, source,
                                    model if loaded.is_torch else None):
        try:
            info = make()
        except ConversionError as exc:
            left.append(LeftOut.from_error(art.key, stage, make_tool(art.key), exc,
                                           required=art.required))
            continue
        problem = _load_problem(work, art, shapes, host_threads(profile.runtime.threads),
                                sample_feed(inputs, 0, shapes))
        if problem is None:
            made[art.key] = info
        else:
            left.append(problem)
    return made, left


def _makers(work: Path, calib: dict[str, np.ndarray], inputs: dict[str, np.ndarray],
            profile: Profile, progress: Progress, source: dict[str, Any],
            torch_model: Any = None) -> Iterator[tuple[Artifact, str, Callable[[], dict[str, Any]]]]:
    """``(artifact, stage, make)`` for each artifact of the profile, ONNX first, one at a time."""
    fp32, wanted = work / "model.fp32.onnx", {a.key: a for a in profile.artifacts}
    if "onnx-fp32" in wanted:
        yield wanted["onnx-fp32"], "export", lambda: source
    if "onnx-int8" in wanted:
        progress("quantizing ONNX int8")
        yield wanted["onnx-int8"], "quantize", lambda: make_onnx_int8(
            fp32, work / "model.int8.onnx", calib, int8_quantization(profile, "onnx"), inputs,
            host_threads(profile.runtime.threads), progress)
    if "onnx-fp16" in wanted:
        progress("converting ONNX fp16")
        yield wanted["onnx-fp16"], "convert", lambda: convert_fp16(
            fp32, work / "model.fp16.onnx", calib)
    tflite = [a for a in profile.artifacts if a.format == "tflite"]
    if tflite:  # one converter process, each precision its own call: one failing keeps the rest
        progress(f"converting to TFLite ({', '.join(a.precision for a in tflite)})")
        results = make_tflite(fp32, work, [a.precision for a in tflite], calib,
                              int8_quantization(profile, "tflite"), torch_model=torch_model,
                              progress=progress)
    for art in tflite:
        yield art, "convert", lambda p=art.precision: _made(results[p])


def _made(result: dict[str, Any] | ConversionError) -> dict[str, Any]:
    if isinstance(result, ConversionError):
        raise result
    return result


def _load_problem(work: Path, art: Artifact, shapes: dict[str, tuple[int, ...]],
                  threads: int, example: dict[str, np.ndarray]) -> LeftOut | None:
    """``None`` when the artifact loads (and runs once, on *example*) in its runtime, else why
    not."""
    try:
        with timed("load-check", art.key):
            open_runner(art.format, work / f"model.{art.precision}.{art.format}", shapes,
                        threads, example=example)
    except ConversionError as exc:
        return LeftOut.from_error(art.key, "load", runtime_tool(art.key), exc,
                                  required=art.required)
    return None


def _verify_artifact(art: Artifact, converter: dict[str, Any], check: ArtifactCheck,
                     calib: dict[str, np.ndarray], progress: Progress
                     ) -> tuple[dict[str, Any] | None, list[LeftOut]]:
    """Verify one made artifact (int8: with its remedies); return its entry and what was left out.

    An fp16 delivered in place of an int8 comes back as its own entry, and the int8 is left out
    with ``delivered_instead`` naming it.
    """
    progress(f"verifying {art.key}")
    tool = runtime_tool(art.key)
    try:
        entry, result = check(art.key, converter)
        if art.precision == "int8":  # over its gate: per-channel, keep layers float, fp16
            job = Int8Job.for_artifact(check.work, art, calib, check.inputs,
                                       host_threads(check.profile.runtime.threads), progress,
                                       tuple(a.key for a in check.profile.artifacts),
                                       arch=check.profile.arch)
            entry, result = gate_int8(job, entry, result, check)
    except ConversionError as exc:  # VerificationError too: the gate could not judge it
        stage = "load" if getattr(exc, "stage", None) == "load" else "verify"
        lost = LeftOut.from_error(art.key, stage, tool, exc, required=art.required)
        if art.precision == "int8" and pending_substitutes([lost], check.profile):
            return substitute(art, lost, check, calib, progress)  # runs no sample: remedies
        return None, [lost]
    fallback = entry.get("fallback") or {}
    if not result.passed:
        return None, [LeftOut(art.key, "verify", tool, result.reason,
                              list(fallback.get("tried", [])), art.required,
                              figures=list(fallback.get("figures", [])))]
    if entry["key"] != art.key:
        return entry, [LeftOut(art.key, "verify", tool, fallback["cause"], fallback["tried"],
                               art.required, delivered_instead=entry["key"])]
    return entry, []


def _drop_unshipped(work: Path, artifacts: list[dict[str, Any]]) -> None:
    """Remove every model file no surviving artifact names (left-out ones, fp32 only a source)."""
    keep = {a["file"] for a in artifacts}
    for path in work.glob("model.*"):
        if path.name not in keep:
            path.unlink()


def _in_profile_order(left: list[LeftOut], profile: Profile) -> list[LeftOut]:
    order = {a.key: i for i, a in enumerate(profile.artifacts)}
    return sorted(left, key=lambda lo: order.get(lo.key, len(order)))
