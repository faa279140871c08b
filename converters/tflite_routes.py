"""TFLite artifacts by several routes, tried in order, each try recorded.

:func:`make_tflite` converts every requested precision with onnx2tf from the cleaned ONNX
(:func:`converters.export_tflite.export_tflite_each`, one child process); a precision onnx2tf
could not make is tried again by the direct PyTorch route (litert-torch) when the source is a
torch model and that route can make it. The result maps each precision to how its file was made
(``route``, and ``tried: [{route, error}]`` when onnx2tf failed first) or to a
:class:`ConversionError` whose ``tried`` names both routes and whose message carries both causes.
litert-torch runs in its own ~2 GB environment: it is used when that environment exists, or
created when the caller allows it (``install_litert``); otherwise the skip is recorded with why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from . import export_litert
from .export_tflite import export_tflite_each

__all__ = ["make_tflite"]

log = logging.getLogger(__name__)

Made = dict[str, Any] | ConversionError


def make_tflite(onnx_path: Path, out_dir: Path, precisions: list[str],
                calibration: dict[str, np.ndarray], quantization: Any = None, *,
                torch_model: Any = None, install_litert: bool = False,
                progress: Callable[[str], None] = log.info) -> dict[str, Made]:
    """``model.<precision>.tflite`` in *out_dir* for each precision, by the first route that
    makes it; see the module doc. *calibration* is keyed by input name in argument order."""
    results = export_tflite_each(onnx_path, out_dir, precisions, calibration, quantization)
    failed = {p: r for p, r in results.items() if isinstance(r, ConversionError)}
    if not failed:
        return results
    retry = []
    for precision, error in failed.items():
        reason = _litert_cannot(precision, torch_model, quantization, install_litert)
        if reason:
            results[precision] = _both_failed(precision, error, reason, skipped=True)
        else:
            retry.append(precision)
    if retry:
        progress(f"TFLite {', '.join(retry)}: onnx2tf failed; trying litert-torch")
        per_channel = quantization.per_channel if quantization is not None else True
        try:
            made = export_litert.export_tflite_torch_each(
                torch_model, out_dir, retry, calibration, per_channel=per_channel,
                progress=progress)
        except ConversionError as exc:  # the route as a whole: export or environment
            made = {p: exc for p in retry}
        names = _io_names(onnx_path)
        for precision in retry:
            results[precision] = _second(precision, failed[precision], made[precision], names)
    return results


def _io_names(onnx_path: Path) -> dict[str, dict[str, str]]:
    """litert-torch's signature names (``args_N``, ``output_N``) → the source's names, in order
    (the ONNX was exported from the same module, so the orders agree)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return {"inputs": {f"args_{i}": v.name for i, v in enumerate(graph.input)},
            "outputs": {f"output_{i}": v.name for i, v in enumerate(graph.output)}}


def _litert_cannot(precision: str, torch_model: Any, quantization: Any,
                   install: bool) -> str | None:
    """Why litert-torch cannot make *precision* here, or ``None`` when it can."""
    if torch_model is None:
        return "the source is not a PyTorch model"
    if precision not in ("fp32", "int8"):
        return f"litert-torch makes fp32 and int8, not {precision}"
    if precision == "int8" and quantization is not None and (
            quantization.mode != "static" or (quantization.io or "int8") != "int8"):
        return "litert-torch makes static int8 with int8 I/O only"
    if not install and not export_litert.litert_env_ready():
        return (f"its environment ({export_litert.litert_env_dir()}) is not created; "
                "allow install_litert (~6 min, ~2 GB once)")
    return None


def _second(precision: str, first: ConversionError, made: Made,
            names: dict[str, dict[str, str]]) -> Made:
    if isinstance(made, ConversionError):
        return _both_failed(precision, first, made.cause or str(made), skipped=False)
    made["tried"] = [{"route": "onnx2tf", "error": first.cause or str(first)}]
    made["io_names"] = names
    return made


def _both_failed(precision: str, first: ConversionError, second: str,
                 skipped: bool) -> ConversionError:
    cause = first.cause or str(first)
    tail = f"litert-torch skipped: {second}" if skipped else f"litert-torch: {second}"
    error = ConversionError(f"{first}; {tail}" if skipped else
                            f"TFLite export failed ({precision}): onnx2tf: {cause}; {tail}",
                            stage=first.stage or "convert", tool=first.tool or "onnx2tf",
                            cause=cause, tried=["onnx2tf"] if skipped else
                            ["onnx2tf", "litert-torch"])
    return error
