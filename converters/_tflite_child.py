"""The child side of :mod:`converters.export_tflite`: clean the ONNX up, then run onnx2tf once
per job (float: fp32 + fp16; int8), each in a fresh state, and write ``result.json``.

Runs with the network disabled (every socket connect raises) so nothing can be downloaded.
onnx2tf's own onnxsim call is skipped (the clean-up has run onnxslim), and so is its search for a
parameter-replacement JSON after a failure (an empty one is given): on a 1-node model that search
took ~50 s and proposed an identity transpose that did not fix anything. Each
job converts its own copy of the cleaned model (onnx2tf rewrites its input) into its own folder,
with onnx2tf's log kept in ``<job>/onnx2tf.log``; between jobs the Keras session and the random
seeds onnx2tf sets at import are reset, so a job converts exactly as in a process of its own.
A failed job records onnx2tf's real one-line cause (:func:`converters._onnx2tf_log.cause`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._onnx2tf_log import cause
from ._onnx2tf_only import only_variants
from ._util import one_line

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Convert per ``argv[0]`` (request JSON); return the exit status."""
    request = json.loads(Path(argv[0]).read_text())
    work = Path(argv[0]).parent
    _disable_network()
    try:
        result = _run(request, work)
    except Exception as exc:  # the source model itself cannot be read or cleaned
        result = {"ok": False, "error": one_line(exc, limit=400)}
    (work / "result.json").write_text(json.dumps(result))
    if not result["ok"]:
        print(f"onnx2tf: {result['error']}", file=sys.stderr)
    return 0 if result["ok"] else 1


def _run(request: dict[str, Any], work: Path) -> dict[str, Any]:
    from .onnx_cleanup import clean_onnx

    start = time.perf_counter()
    cleaned = clean_onnx(Path(request["source"]), work / "clean.onnx", **request["cleanup"])
    calibration = [[cleaned.io_renamed.get(n, n), p] for n, p in request["calibration"]
                   if n not in cleaned.fixed_inputs]
    cleanup = {"steps": cleaned.steps, "route": cleaned.route(), "opset": cleaned.opset,
               "io_renamed": cleaned.io_renamed, "seconds": round(time.perf_counter() - start, 2)}
    if cleaned.fixed_inputs:
        cleanup["fixed_inputs"] = cleaned.fixed_inputs
    nhwc = [cleaned.io_renamed.get(n, n) for n in request.get("channels_last_inputs", [])]
    _calibration_feed([cleaned.io_renamed.get(n, n) for n in request.get("whole_inputs", [])],
                      {cleaned.io_renamed.get(n, n): t
                       for n, t in request.get("integer_inputs", {}).items()})
    pseudo = _pseudo_ops(cleaned.op_counts)
    if pseudo:  # TFLite has no builtin for them: Flex ops the standard interpreter cannot run
        step = {"step": "erf", "tool": "onnx2tf", "changed": True, "replaced": pseudo,
                "note": "Erf as onnx2tf's polynomial (max error 1.5e-7); TFLite has no Erf"}
        cleanup["steps"].append(step)
        cleanup["route"].append("erf")
    jobs = {job["name"]: _job(job, cleaned.path, calibration, work, nhwc, pseudo)
            for job in request["jobs"]}
    samples = int(np.load(request["calibration"][0][1], mmap_mode="r").shape[0])
    return {"ok": True, "cleanup": cleanup, "jobs": jobs, "calibration_samples": samples}


def _calibration_feed(whole: list[str], integer: dict[str, str]) -> None:
    """Feed the TFLite calibrator each input as the model takes it.

    onnx2tf slices every calibration array one sample at a time along axis 0 and casts it to
    float32. An input without a batch axis (a recurrent state, stacked whole by the request)
    then arrives one rank too high (Silero's state ``[1, 2, 128, 1]`` for ``[2, 128, 1]``:
    "reshape.cc:94 num_input_elements != num_output_elements (256 != 128)"), and an integer
    input as float ("Cannot set tensor: Got value of type FLOAT32 but expected type INT64 for
    input 2, name: serving_default_sr:0"). This drops the slice's axis of the first and casts
    the second back before the calibrator sees them."""
    if not whole and not integer:
        return
    import tensorflow as tf
    from tensorflow.lite.python.optimize import calibrator

    feed = calibrator.Calibrator._feed_tensors

    def as_taken(name: str, value: Any) -> Any:
        if name in whole and value.shape[0] == 1:
            value = value[0]
        return tf.cast(value, integer[name]) if name in integer else value

    def fed(self: Any, dataset_gen: Any, resize_input: bool = True) -> Any:
        def samples() -> Any:
            for sample in dataset_gen():
                yield ({k: as_taken(k, v) for k, v in sample.items()}
                       if isinstance(sample, dict) else sample)
        return feed(self, samples, resize_input)

    calibrator.Calibrator._feed_tensors = fed


def _pseudo_ops(op_counts: dict[str, int]) -> dict[str, int]:
    """ONNX ops TFLite runs only as Flex (TensorFlow) ops that onnx2tf can write as builtins:
    ``Erf`` (BERT's GELU) → its polynomial ``erf``; op type → count in the cleaned graph."""
    return {op: op_counts[op] for op in ("Erf",) if op_counts.get(op)}


def _job(job: dict[str, Any], cleaned: Path, calibration: list[list[str]],
         work: Path, nhwc: list[str], pseudo: dict[str, int] | None = None) -> dict[str, Any]:
    folder = work / f"job-{job['name']}"
    folder.mkdir()
    onnx_path, log_path = folder / "model.onnx", folder / "onnx2tf.log"
    shutil.copyfile(cleaned, onnx_path)
    start = time.perf_counter()
    skipped: list[str] = []  # converter calls onnx2tf would make for files the job does not keep
    with open(log_path, "w") as log:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                _fresh_state()
                with only_variants(_keep(job), skipped, saved_model=_calibrates(job)):
                    _convert(onnx_path, folder / "out", calibration, job["int8"], nhwc,
                             [op.lower() for op in pseudo or {}])
            error = None
        except BaseException as exc:  # onnx2tf reports errors with sys.exit(1) or re-raises
            error = exc
    seconds = round(time.perf_counter() - start, 2)
    text = log_path.read_text(errors="replace")
    if error is not None:
        return {"ok": False, "error": cause(text, error), "seconds": seconds, "log": str(log_path)}
    files = _files(folder / "out", job["int8"])
    missing = [p.name for p in files.values() if not p.exists()]
    if missing:
        why = cause(text, None) or "no error reported"
        return {"ok": False, "error": f"onnx2tf did not write {', '.join(missing)} ({why})",
                "seconds": seconds, "log": str(log_path)}
    return {"ok": True, "files": {k: str(v) for k, v in files.items()}, "seconds": seconds,
            "skipped": skipped}


def _calibrates(job: dict[str, Any]) -> bool:
    """Static int8: onnx2tf calibrates from the SavedModel it writes (others never read it)."""
    return bool(job["int8"]) and job["int8"]["mode"] != "dynamic"


def _keep(job: dict[str, Any]) -> set[str]:
    """onnx2tf's file suffixes the job keeps (:mod:`converters._onnx2tf_only`)."""
    if job["int8"]:
        return {job["int8"]["variant"]}
    return set(job.get("keep") or ("float32", "float16"))


def _fresh_state() -> None:
    """What onnx2tf sets once at import (seeds) and Keras accumulates (layer-name counters)."""
    import random

    import onnx2tf  # noqa: F401  (imports tensorflow, tf_keras and seeds them)
    import tensorflow as tf
    import tf_keras

    tf_keras.backend.clear_session()
    random.seed(0)
    np.random.seed(0)
    tf.random.set_seed(0)
    tf_keras.utils.set_random_seed(0)


def _convert(onnx_path: Path, out: Path, calibration: list[list[str]],
             int8: dict[str, Any] | None, nhwc: list[str], pseudo: list[str] | None = None
             ) -> None:
    """One onnx2tf call; *nhwc*: inputs that are channels-last already (kept as they are)."""
    import onnx2tf
    import onnx2tf.onnx2tf as core
    import onnx2tf.utils.common_functions as common

    first = calibration[0][1]

    def local_samples() -> np.ndarray:
        """Stand-in for onnx2tf's sample-image download: our own calibration data."""
        return np.load(first)[:20]

    core.download_test_image_data = local_samples
    common.download_test_image_data = local_samples
    no_replacements = onnx_path.with_name("no_replacements.json")
    no_replacements.write_text(json.dumps({"format_version": 1, "operations": []}))
    onnx2tf.convert(
        input_onnx_file_path=str(onnx_path), output_folder_path=str(out),
        custom_input_op_name_np_data_path=[[n, p, 0.0, 1.0] for n, p in calibration],
        not_use_onnxsim=True, param_replacement_file=str(no_replacements),
        keep_nwc_or_nhwc_or_ndhwc_input_names=nhwc or None,
        replace_to_pseudo_operators=pseudo or None,
        verbosity="info", **_int8_arguments(int8))


def _int8_arguments(int8: dict[str, Any] | None) -> dict[str, Any]:
    """onnx2tf's keyword arguments for the requested int8 variant (none: float only)."""
    if not int8:
        return {}
    quant_type = "per-channel" if int8["per_channel"] else "per-tensor"
    if int8["mode"] == "dynamic":
        return {"output_dynamic_range_quantized_tflite": True, "quant_type": quant_type}
    io = int8["io"] if int8["io"] != "float32" else "int8"
    return {"output_integer_quantized_tflite": True, "quant_type": quant_type,
            "input_quant_dtype": io, "output_quant_dtype": io}


def _files(out: Path, int8: dict[str, Any] | None) -> dict[str, Path]:
    if int8:
        return {"int8": out / f"model_{int8['variant']}.tflite"}
    return {"fp32": out / "model_float32.tflite", "fp16": out / "model_float16.tflite"}


def _disable_network() -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("network access is disabled during TFLite conversion (edgeship)")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
