"""torch → ONNX fp32 with static batch-1 shapes (edge runtimes want static shapes).

The dynamo exporter (``torch.onnx.export(..., dynamo=True)``, opset ≥ 18) is tried first; if it
fails, the TorchScript exporter (``dynamo=False``, opset ≤ 17) is the fallback, and the returned
info says which one made the file. An ONNX source is copied unchanged.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError

from ._util import one_line
from .load import LoadedModel
from .steps import timed

__all__ = ["TORCHSCRIPT_MAX_OPSET", "export_onnx", "output_names_for", "run_torch"]

log = logging.getLogger(__name__)

TORCHSCRIPT_MAX_OPSET = 17
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"
"""Warns once per missing optional op library ("torchvision is not installed"): not our concern."""


def run_torch(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a torch model on one batch of named numpy inputs (in order); outputs as numpy."""
    import torch

    args = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values())
    with torch.inference_mode():
        out = model(*args)
    if isinstance(out, dict):
        out = list(out.values())
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o.detach().cpu().float().numpy() for o in outs]


def output_names_for(outputs: list[np.ndarray], model: Any = None) -> list[str]:
    """The names a torch *model* declares (``output_names``, one per output), else ``logits``
    for one 2-D (classifier) output, ``output`` for one other, ``output_<i>`` else. The name is
    what the fidelity gate reads first: declare ``output_names = ("embedding",)`` on a module
    whose 2-D output is not class scores."""
    declared = getattr(model, "output_names", None)
    if isinstance(declared, (tuple, list)) and len(declared) == len(outputs) and all(
            isinstance(n, str) and n for n in declared) and len(set(declared)) == len(declared):
        return list(declared)
    if len(outputs) == 1:
        return ["logits" if outputs[0].ndim == 2 else "output"]
    return [f"output_{i}" for i in range(len(outputs))]


@timed("export", "onnx-fp32")
def export_onnx(loaded: LoadedModel, example: dict[str, np.ndarray], out: Path, opset: int,
                output_names: list[str]) -> dict[str, Any]:
    """Write the fp32 ONNX artifact to *out*; return how it was made (for the manifest).

    *example* maps ONNX input name → a batch-1 array (its shape becomes the static shape).
    """
    if not loaded.is_torch:
        shutil.copyfile(loaded.model, out)
        return {"tool": "copy", "method": "source ONNX copied unchanged"}
    try:
        _export(loaded.model, example, out, opset, output_names, dynamo=True)
        return {"tool": "torch.onnx", "method": "dynamo", "opset": opset}
    except Exception as exc:  # the dynamo exporter fails in many ways; the fallback decides
        first = one_line(exc)
        log.warning("dynamo ONNX export failed (%s); retrying with the TorchScript exporter", first)
    fallback = min(opset, TORCHSCRIPT_MAX_OPSET)
    try:
        _export(loaded.model, example, out, fallback, output_names, dynamo=False)
    except Exception as exc:  # both exporters failed: the model cannot be exported
        raise ModelError(f"ONNX export of {loaded.ref} failed with both exporters (dynamo: "
                         f"{first}; torchscript: {one_line(exc)}); make the model "
                         "torch.export-able or export the .onnx yourself") from exc
    return {"tool": "torch.onnx", "method": "torchscript", "opset": fallback,
            "dynamo_error": first}


def _export(model: Any, example: dict[str, np.ndarray], out: Path, opset: int,
            output_names: list[str], *, dynamo: bool) -> None:
    import onnx
    import torch

    args = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in example.values())
    kwargs: dict[str, Any] = {"dynamo": dynamo, "opset_version": opset,
                              "input_names": list(example), "output_names": output_names}
    if dynamo:
        kwargs.update(external_data=False, verbose=False)
    out.unlink(missing_ok=True)
    registration = logging.getLogger(_REGISTRATION_LOGGER)
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # the exporter prints progress lines; torch's own pytree code trips its deprecation
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            torch.onnx.export(model, args, str(out), **kwargs)
    finally:
        registration.setLevel(level)
    onnx.checker.check_model(str(out))
    got = [i.name for i in onnx.load(str(out), load_external_data=False).graph.input]
    if got != list(example):
        raise RuntimeError(f"exported inputs {got} != expected {list(example)}")
    log.info("exported %s (%s, opset %d, %d bytes)", out.name,
             "dynamo" if dynamo else "torchscript", opset, out.stat().st_size)
