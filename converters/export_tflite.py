"""ONNX fp32 → TFLite fp32, fp16 and int8 (full-integer, integer with float I/O, dynamic-range)
through onnx2tf, in a child process.

onnx2tf imports tensorflow (~6 s, ~800 MB) and reports errors with ``sys.exit``; running it as
``python -m converters.export_tflite REQUEST.json`` frees that memory when done, keeps its console
noise in a log file, and a crash cannot take the host process down. The child works on a COPY of
the .onnx (onnx2tf rewrites its input), in a temp dir, with the network disabled: calibration
data is always given (NHWC, mean 0 / std 1), and onnx2tf's sample-image download for 3-channel
inputs is replaced by that data. The int8 artifact, per the profile's ``quantization``:
``mode: static`` + ``io: int8|uint8`` → ``*_full_integer_quant.tflite`` (that I/O type), ``io:
float32`` → ``*_integer_quant.tflite``; ``mode: dynamic`` → ``*_dynamic_range_quant.tflite``
(int8 weights, float I/O). ``per_channel: false`` → onnx2tf's ``quant_type="per-tensor"``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from ._tflite_spare import keep_spare, take_spare
from ._util import one_line
from .onnx_cleanup import held_setting, sample_shape
from .steps import record, timed

__all__ = ["TIMEOUT_S", "VARIANTS", "channels_last", "export_tflite", "export_tflite_each",
           "int8_options"]

log = logging.getLogger(__name__)

TIMEOUT_S = 900.0
VARIANTS = {"fp32": "float32", "fp16": "float16", "int8": "full_integer_quant"}
"""onnx2tf output suffix per precision (``model_<suffix>.tflite``); int8: :func:`int8_options`."""
_ROOT = Path(__file__).resolve().parent.parent
_HINT = "check the ONNX model's ops, or drop the tflite artifacts from the profile"


def channels_last(ndim: int) -> list[int] | None:
    """The permutation onnx2tf applies to a channels-first input (``[0,2,3,1]`` for 4-D)."""
    return [0, *range(2, ndim), 1] if 3 <= ndim <= 5 else None


def int8_options(quantization: Any = None, per_channel: bool | None = None,
                 activations: str | None = None) -> dict[str, Any]:
    """Resolved int8 options (``mode``, ``io``, ``per_channel``, onnx2tf ``variant``) of a
    ``profiles.Quantization`` (or ``None``: full-integer, int8 I/O, per-channel);
    ``activations="int16"``: int8 weights with int16 activations, float I/O (TFLite's 16x8
    mode, the remedy for activation ranges int8 cannot resolve)."""
    mode = quantization.mode if quantization is not None else "static"
    io = (quantization.io if quantization is not None else None) or "int8"
    if per_channel is None:
        per_channel = quantization.per_channel if quantization is not None else True
    if mode == "dynamic":
        return {"mode": mode, "io": "float32", "per_channel": per_channel,
                "variant": "dynamic_range_quant"}
    if activations == "int16":
        return {"mode": mode, "io": "float32", "per_channel": per_channel,
                "activations": "int16", "variant": "integer_quant_with_int16_act"}
    variant = "integer_quant" if io == "float32" else "full_integer_quant"
    return {"mode": mode, "io": io, "per_channel": per_channel, "variant": variant}


def export_tflite(onnx_path: Path, out_dir: Path, precisions: list[str],
                  calibration: dict[str, np.ndarray], quantization: Any = None, *,
                  per_channel: bool | None = None, activations: str | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Convert *onnx_path*; write ``model.<precision>.tflite`` into *out_dir* for each precision.

    *calibration* maps ONNX input name → samples in the source (channels-first) layout; it is
    used for int8 and for onnx2tf's own checks. *quantization* (``profiles.Quantization``) says
    how int8 is made; *per_channel* overrides its ``per_channel``, *activations* (``int16``)
    asks for int16 activations. The ONNX model is cleaned up
    first (:mod:`converters.onnx_cleanup`), then each precision is converted by its own onnx2tf
    call (fp32 and fp16 share the float call; int8 in one call with fp32 drifted the fp32 file).
    Returns, per precision, how the file was made; raises :class:`ConversionError` (``stage``,
    ``tool``, ``cause``) when a precision could not be made, and then writes no file. fp16 alone
    is the spare of an earlier float call when there is one (:mod:`converters._tflite_spare`).
    """
    if precisions == ["fp16"]:
        spare = take_spare(onnx_path, out_dir / "model.fp16.tflite", calibration)
        if spare is not None:
            return {"fp16": spare}
    results = export_tflite_each(onnx_path, out_dir, precisions, calibration, quantization,
                                 per_channel=per_channel, activations=activations)
    failed = [r for r in results.values() if isinstance(r, ConversionError)]
    if failed:
        for precision in precisions:
            (out_dir / f"model.{precision}.tflite").unlink(missing_ok=True)
        raise failed[0]
    return results  # type: ignore[return-value]


def export_tflite_each(onnx_path: Path, out_dir: Path, precisions: list[str],
                       calibration: dict[str, np.ndarray], quantization: Any = None, *,
                       per_channel: bool | None = None, activations: str | None = None
                       ) -> dict[str, dict[str, Any] | ConversionError]:
    """:func:`export_tflite` for per-artifact isolation: one child process (tensorflow imported
    once) and a precision that fails maps to its :class:`ConversionError` instead of raising,
    so the others' files are kept. Measured on a small CNN, fp32 + int8: 24 s in one child
    against 23 s + 30 s in one child each, and byte-identical files."""
    bad = sorted(set(precisions) - set(VARIANTS))
    if bad:
        raise ConversionError(f"TFLite export cannot make {', '.join(bad)}; supported: fp32, fp16, "
                              "int8", stage="convert", tool="onnx2tf",
                              cause=f"unsupported precision {', '.join(bad)}")
    int8 = (int8_options(quantization, per_channel, activations) if "int8" in precisions
            else None)
    with tempfile.TemporaryDirectory(prefix="edgeship-tflite-") as tmp:
        work = Path(tmp)
        try:
            with timed("convert", ", ".join(f"tflite-{p}" for p in precisions)):
                result = _run_child(work, _write_request(work, onnx_path,
                                                         _jobs(precisions, int8), calibration))
        except ConversionError as exc:  # the model could not even be read: every precision
            return {precision: exc for precision in precisions}
        made = {p: _take(p, int8, result, out_dir) for p in precisions}
        _set_fp16_aside(precisions, int8, result, onnx_path, out_dir, calibration)
        return made


def _set_fp16_aside(precisions: list[str], int8: dict[str, Any] | None, result: dict[str, Any],
                    onnx_path: Path, out_dir: Path, calibration: dict[str, np.ndarray]) -> None:
    """Keep the float call's fp16 file for the int8 artifact's fp16 fallback (a profile with
    int8 but no fp16 TFLite artifact, converted next to its ONNX source)."""
    job = result["jobs"].get("float")
    if ("fp16" in precisions or "int8" not in precisions or job is None or not job["ok"]
            or out_dir.resolve() != onnx_path.parent.resolve()):
        return
    keep_spare(onnx_path, Path(job["files"]["fp16"]), _info("fp16", int8, job, result),
               calibration)


def _take(precision: str, int8: dict[str, Any] | None, result: dict[str, Any],
          out_dir: Path) -> dict[str, Any] | ConversionError:
    """Move one precision's file into *out_dir* and describe it, or its error."""
    job = result["jobs"][_job_of(precision)]
    if not job["ok"]:
        log.debug("onnx2tf log (%s call):\n%s", _job_of(precision),
                  Path(job["log"]).read_text(errors="replace")[-6000:])
        return _failed(precision, job["error"])
    shutil.move(job["files"][precision], out_dir / f"model.{precision}.tflite")
    return _info(precision, int8, job, result)


def _jobs(precisions: list[str], int8: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One onnx2tf call for the float files (fp32 and fp16 come out of the same call), one
    for int8."""
    jobs = []
    if {"fp32", "fp16"} & set(precisions):  # fp16 also as the spare for int8's fp16 fallback
        keep = [v for p, v in (("fp32", "float32"), ("fp16", "float16"))
                if p in precisions or (p == "fp16" and "int8" in precisions)]
        jobs.append({"name": "float", "int8": None, "keep": keep})
    if int8 is not None:
        jobs.append({"name": "int8", "int8": int8})
    return jobs


def _job_of(precision: str) -> str:
    return "int8" if precision == "int8" else "float"


def _info(precision: str, int8: dict[str, Any] | None, job: dict[str, Any],
          result: dict[str, Any]) -> dict[str, Any]:
    cleanup = result["cleanup"]
    info: dict[str, Any] = {
        "tool": "onnx2tf", "variant": VARIANTS[precision], "io": "float32",
        "route": [*cleanup["route"], f"onnx2tf ({_job_of(precision)} call)"],
        "cleanup": cleanup["steps"], "calibration_samples": result["calibration_samples"],
        "seconds": job["seconds"]}
    if cleanup["io_renamed"]:
        info["io_renamed"] = cleanup["io_renamed"]
    if cleanup.get("fixed_inputs"):  # inputs the artifact no longer takes: the values it serves
        info["fixed_inputs"] = cleanup["fixed_inputs"]
    if precision == "int8" and int8 is not None:
        options = {k: v for k, v in int8.items() if k != "variant"}
        info.update(variant=int8["variant"], io=int8["io"], options=options)
    return info


def _failed(precision: str, cause: str) -> ConversionError:
    return ConversionError(f"TFLite export failed: onnx2tf ({precision}): {cause.rstrip('.')}; "
                           f"{_HINT}", stage="convert", tool="onnx2tf", cause=cause)


def _write_request(work: Path, onnx_path: Path, jobs: list[dict[str, Any]],
                   calibration: dict[str, np.ndarray]) -> Path:
    shutil.copyfile(onnx_path, work / "source.onnx")
    kept, ranks = _input_facts(onnx_path)  # kept: already channels-last (a TFLite source's)
    calib, whole, integer, constant, shapes = [], [], {}, {}, {}
    for i, (name, arr) in enumerate(calibration.items()):
        shapes[name] = sample_shape(ranks.get(name), arr)
        if np.issubdtype(arr.dtype, np.integer):  # onnx2tf feeds float32: cast back in the child
            integer[name] = str(arr.dtype)
        setting = held_setting(ranks.get(name), arr)
        if setting is not None:  # a setting (sample rate): fixed if the graph branches on it
            constant[name] = setting
        if arr.ndim >= 2 and ranks.get(name) == arr.ndim - 1:  # no batch axis (a state): whole
            whole.append(name)
            inner = None if name in kept else channels_last(arr.ndim - 1)
            perm = [0, *(p + 1 for p in inner)] if inner else None
        else:
            perm = None if name in kept else channels_last(arr.ndim)
        nhwc = arr.transpose(perm) if perm else arr
        np.save(work / f"calib_{i}.npy", np.ascontiguousarray(nhwc, dtype=np.float32))
        calib.append([name, str(work / f"calib_{i}.npy")])
    request = work / "request.json"
    request.write_text(json.dumps({
        "source": str(work / "source.onnx"), "calibration": calib, "jobs": jobs,
        "channels_last_inputs": kept, "whole_inputs": whole, "integer_inputs": integer,
        "cleanup": {"slim": True, "sanitize_names": True, "unroll_lstm": True,
                    "constant_inputs": constant, "input_shapes": shapes}}))
    return request


def _input_facts(onnx_path: Path) -> tuple[list[str], dict[str, int]]:
    """The inputs marked channels-last already, and each graph input's rank (a calibration array
    one rank higher is stacked whole samples: the input has no batch axis); read in one load."""
    import onnx

    from .tflite_to_onnx import channels_last_inputs

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:  # not readable: the child says why, in onnx2tf's words
        return [], {}
    ranks = {i.name: len(i.type.tensor_type.shape.dim) for i in model.graph.input}
    return channels_last_inputs(model), ranks


def _run_child(work: Path, request: Path) -> dict[str, Any]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "converters.export_tflite", str(request)]
    try:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        cause = f"onnx2tf ran over {TIMEOUT_S:.0f} s"
        raise ConversionError(f"TFLite export failed: {cause}; {_HINT}", stage="convert",
                              tool="onnx2tf", cause=cause) from exc
    result_file = work / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    if result is None or not result.get("ok"):
        cause = result["error"] if result else _last_line(proc.stderr, proc.returncode)
        log.debug("onnx2tf child output:\n%s", proc.stderr[-4000:])
        raise ConversionError(f"TFLite export failed: {cause}; {_HINT}", stage="convert",
                              tool="onnx2tf", cause=cause)
    record("onnx cleanup", result["cleanup"]["seconds"])
    for name, job in result["jobs"].items():
        log.info("onnx2tf %s call: %s in %.1f s", name, "ok" if job["ok"] else "failed",
                 job["seconds"])
        record(f"onnx2tf {name} call", job["seconds"])
    return result


def _last_line(stderr: str, code: int) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return one_line(lines[-1]) if lines else f"the converter process exited {code} with no output"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m converters.export_tflite REQUEST.json (written by export_tflite)")
    from ._tflite_child import main

    sys.exit(main(sys.argv[1:]))
