"""The child side of :mod:`converters.export_tflite`: run onnx2tf once, write ``result.json``.

Runs with the network disabled (every socket connect raises) so nothing can be downloaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._util import one_line

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Convert per ``argv[0]`` (request JSON); return the exit status."""
    request = json.loads(Path(argv[0]).read_text())
    work = Path(argv[0]).parent
    _disable_network()
    log = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            _convert(request)
        result = _collect(request, log.getvalue())
    except BaseException as exc:  # onnx2tf reports errors with sys.exit(1)
        result = {"ok": False, "error": _cause(log.getvalue(), exc)}
    result["seconds"] = round(time.perf_counter() - start, 2)
    (work / "onnx2tf.log").write_text(log.getvalue())
    (work / "result.json").write_text(json.dumps(result))
    if not result["ok"]:
        print(f"onnx2tf: {result['error']}", file=sys.stderr)
        print(log.getvalue()[-4000:], file=sys.stderr)
    return 0 if result["ok"] else 1


def _convert(request: dict[str, Any]) -> None:
    import onnx2tf
    import onnx2tf.onnx2tf as core
    import onnx2tf.utils.common_functions as common

    first = request["calibration"][0][1]

    def local_samples() -> np.ndarray:
        """Stand-in for onnx2tf's sample-image download: our own calibration data."""
        return np.load(first)[:20]

    core.download_test_image_data = local_samples
    common.download_test_image_data = local_samples
    onnx2tf.convert(
        input_onnx_file_path=request["onnx"], output_folder_path=request["out"],
        custom_input_op_name_np_data_path=[[n, p, 0.0, 1.0] for n, p in request["calibration"]],
        non_verbose=True, verbosity="error", **_int8_arguments(request["int8"]))


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


def _collect(request: dict[str, Any], log: str) -> dict[str, Any]:
    out, stem = Path(request["out"]), Path(request["onnx"]).stem
    files = {"fp32": out / f"{stem}_float32.tflite", "fp16": out / f"{stem}_float16.tflite"}
    if request["int8"]:
        files["int8"] = out / f"{stem}_{request['int8']['variant']}.tflite"
    missing = [p.name for p in files.values() if not p.exists()]
    if missing:
        return {"ok": False, "error": f"onnx2tf did not write {', '.join(missing)} "
                                      f"({_last_marked(log) or 'no error reported'})"}
    samples = int(np.load(request["calibration"][0][1], mmap_mode="r").shape[0])
    return {"ok": True, "files": {k: str(v) for k, v in files.items()},
            "calibration_samples": samples}


def _cause(log: str, exc: BaseException) -> str:
    marked = _last_marked(log)
    if isinstance(exc, SystemExit) and marked:
        return marked
    return one_line(exc) if not marked else f"{one_line(exc)} ({marked})"


def _last_marked(log: str) -> str:
    """The last ERROR (else WARNING) line onnx2tf printed, without colours."""
    lines = [one_line(ln) for ln in log.splitlines() if ln.strip()]
    for marker in ("ERROR", "WARNING"):
        found = [ln for ln in lines if marker in ln and "flatc" not in ln]
        if found:
            return found[-1]
    return ""


def _disable_network() -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("network access is disabled during TFLite conversion (edgeship)")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
