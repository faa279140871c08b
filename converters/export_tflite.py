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

from edgeship.errors import ConversionError

from ._util import one_line

__all__ = ["TIMEOUT_S", "VARIANTS", "channels_last", "export_tflite", "int8_options"]

log = logging.getLogger(__name__)

TIMEOUT_S = 900.0
VARIANTS = {"fp32": "float32", "fp16": "float16", "int8": "full_integer_quant"}
"""onnx2tf output suffix per precision (``model_<suffix>.tflite``); int8: :func:`int8_options`."""
_ROOT = Path(__file__).resolve().parent.parent
_HINT = "check the ONNX model's ops, or drop the tflite artifacts from the profile"


def channels_last(ndim: int) -> list[int] | None:
    """The permutation onnx2tf applies to a channels-first input (``[0,2,3,1]`` for 4-D)."""
    return [0, *range(2, ndim), 1] if 3 <= ndim <= 5 else None


def int8_options(quantization: Any = None, per_channel: bool | None = None) -> dict[str, Any]:
    """Resolved int8 options (``mode``, ``io``, ``per_channel``, onnx2tf ``variant``) of a
    ``profiles.Quantization`` (or ``None``: full-integer, int8 I/O, per-channel)."""
    mode = quantization.mode if quantization is not None else "static"
    io = (quantization.io if quantization is not None else None) or "int8"
    if per_channel is None:
        per_channel = quantization.per_channel if quantization is not None else True
    if mode == "dynamic":
        return {"mode": mode, "io": "float32", "per_channel": per_channel,
                "variant": "dynamic_range_quant"}
    variant = "integer_quant" if io == "float32" else "full_integer_quant"
    return {"mode": mode, "io": io, "per_channel": per_channel, "variant": variant}


def export_tflite(onnx_path: Path, out_dir: Path, precisions: list[str],
                  calibration: dict[str, np.ndarray], quantization: Any = None, *,
                  per_channel: bool | None = None) -> dict[str, dict[str, Any]]:
    """Convert *onnx_path*; write ``model.<precision>.tflite`` into *out_dir* for each precision.

    *calibration* maps ONNX input name → samples in the source (channels-first) layout; it is
    used for int8 and for onnx2tf's own checks. *quantization* (``profiles.Quantization``) says
    how int8 is made; *per_channel* overrides its ``per_channel``. Returns, per precision, how
    the file was made.
    """
    bad = sorted(set(precisions) - set(VARIANTS))
    if bad:
        raise ConversionError(f"TFLite export cannot make {', '.join(bad)}; supported: fp32, fp16, int8")
    with tempfile.TemporaryDirectory(prefix="edgeship-tflite-") as tmp:
        work = Path(tmp)
        int8 = int8_options(quantization, per_channel) if "int8" in precisions else None
        request = _write_request(work, onnx_path, int8, calibration)
        result = _run_child(work, request)
        infos = {}
        for precision in precisions:
            produced = Path(result["files"][precision])
            target = out_dir / f"model.{precision}.tflite"
            shutil.move(str(produced), target)
            infos[precision] = {"tool": "onnx2tf", "variant": VARIANTS[precision], "io": "float32",
                                "calibration_samples": result["calibration_samples"],
                                "seconds": result["seconds"]}
            if precision == "int8" and int8 is not None:
                options = {k: v for k, v in int8.items() if k != "variant"}
                infos[precision].update(variant=int8["variant"], io=int8["io"], options=options)
    return infos


def _write_request(work: Path, onnx_path: Path, int8: dict[str, Any] | None,
                   calibration: dict[str, np.ndarray]) -> Path:
    shutil.copyfile(onnx_path, work / "model.onnx")
    calib = []
    for i, (name, arr) in enumerate(calibration.items()):
        perm = channels_last(arr.ndim)
        nhwc = arr.transpose(perm) if perm else arr
        np.save(work / f"calib_{i}.npy", np.ascontiguousarray(nhwc, dtype=np.float32))
        calib.append([name, str(work / f"calib_{i}.npy")])
    request = work / "request.json"
    request.write_text(json.dumps({"onnx": str(work / "model.onnx"), "out": str(work / "out"),
                                   "int8": int8, "calibration": calib}))
    return request


def _run_child(work: Path, request: Path) -> dict[str, Any]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "converters.export_tflite", str(request)]
    try:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(f"TFLite export failed: onnx2tf ran over {TIMEOUT_S:.0f} s; "
                              f"{_HINT}") from exc
    result_file = work / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    if result is None or not result.get("ok"):
        cause = result["error"] if result else _last_line(proc.stderr, proc.returncode)
        log.debug("onnx2tf child output:\n%s", proc.stderr[-4000:])
        raise ConversionError(f"TFLite export failed: {cause}; {_HINT}")
    log.info("onnx2tf finished in %.1f s", result["seconds"])
    return result


def _last_line(stderr: str, code: int) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return one_line(lines[-1]) if lines else f"the converter process exited {code} with no output"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m converters.export_tflite REQUEST.json (written by export_tflite)")
    from ._tflite_child import main

    sys.exit(main(sys.argv[1:]))
