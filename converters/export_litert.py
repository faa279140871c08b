"""PyTorch → TFLite directly, without ONNX or TensorFlow: the litert-torch route.

litert-torch 0.10.0 installs beside torch 2.13 and ai-edge-litert 2.3, but its
``ai-edge-litert[model-utils]`` → ``xdsl`` needs typing-extensions < 4.13, which the host's
pydantic cannot live with; so it runs in its own virtual environment, created on demand from the
package index like the board wheelhouse (:func:`ensure_litert_env`; measured here: 5 min 55 s,
2.1 GB — torch 0.75 GB, jaxlib 0.35 GB, litert_converter 0.29 GB). The host exports the module
with ``torch.export`` (same torch version on both sides) and a child process in that environment
converts each precision on its own (:mod:`converters._litert_child`): fp32, and int8 by PT2E
static quantization (int8 I/O, per-channel unless asked otherwise). Inputs and outputs of 3–5
dimensions are channels-last, as onnx2tf writes them, so both routes' files are fed alike.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from ._util import one_line
from .steps import timed

__all__ = ["LITERT_REQUIREMENTS", "ensure_litert_env", "export_tflite_torch",
           "export_tflite_torch_each", "litert_env_dir", "litert_env_ready"]

log = logging.getLogger(__name__)

LITERT_REQUIREMENTS = ("litert-torch==0.10.0", "torch==2.13.0", "ai-edge-litert==2.3.0")
INSTALL_TIMEOUT_S = 3600.0
TIMEOUT_S = 1800.0
_CHILD = Path(__file__).resolve().parent / "_litert_child.py"
_MARKER = ".edgeship-requirements"
_HINT = "use the onnx2tf route (drop route litert-torch) or check the model is torch.export-able"


def litert_env_dir() -> Path:
    """Where the litert-torch environment lives: ``$EDGESHIP_LITERT_VENV`` or
    ``~/.cache/edgeship/litert-torch``."""
    env = os.environ.get("EDGESHIP_LITERT_VENV")
    return Path(env) if env else Path.home() / ".cache" / "edgeship" / "litert-torch"


def litert_env_ready() -> bool:
    """Whether the environment exists with :data:`LITERT_REQUIREMENTS` (nothing is created)."""
    root = litert_env_dir()
    marker = root / _MARKER
    return (root / "bin" / "python").exists() and marker.exists() and \
        marker.read_text() == "\n".join(LITERT_REQUIREMENTS) + "\n"


def ensure_litert_env(progress: Callable[[str], None] = log.info) -> Path:
    """The environment's python, after creating it and installing :data:`LITERT_REQUIREMENTS`
    when it is missing or was made for other requirements."""
    import sys

    root = litert_env_dir()
    python = root / "bin" / "python"
    if litert_env_ready():
        return python
    progress(f"creating the litert-torch environment in {root} (once; ~6 min, ~2 GB)")
    start = time.perf_counter()
    _run([sys.executable, "-m", "venv", "--clear", str(root)], "venv")
    _run([str(python), "-m", "pip", "install", "-q", *LITERT_REQUIREMENTS], "pip")
    (root / _MARKER).write_text("\n".join(LITERT_REQUIREMENTS) + "\n")
    log.info("litert-torch environment ready in %.0f s", time.perf_counter() - start)
    return python


def export_tflite_torch(model: Any, out_dir: Path, precisions: list[str],
                        calibration: dict[str, np.ndarray], *, per_channel: bool = True,
                        progress: Callable[[str], None] = log.info) -> dict[str, dict[str, Any]]:
    """Convert the torch *model* to ``model.<precision>.tflite`` in *out_dir* (fp32, int8).

    *calibration* maps input name → samples (channels-first, the model's own layout), in the
    model's argument order; its first sample is the example for ``torch.export``. Returns how each
    file was made; raises :class:`ConversionError` (``stage``, ``tool``, ``cause``) when a
    precision could not be made.
    """
    results = export_tflite_torch_each(model, out_dir, precisions, calibration,
                                       per_channel=per_channel, progress=progress)
    for result in results.values():
        if isinstance(result, ConversionError):
            raise result
    return results  # type: ignore[return-value]


@timed("convert litert-torch")
def export_tflite_torch_each(model: Any, out_dir: Path, precisions: list[str],
                             calibration: dict[str, np.ndarray], *, per_channel: bool = True,
                             progress: Callable[[str], None] = log.info
                             ) -> dict[str, dict[str, Any] | ConversionError]:
    """:func:`export_tflite_torch` with a precision that fails mapped to its error."""
    bad = sorted(set(precisions) - {"fp32", "int8"})
    if bad:
        raise ConversionError(f"the litert-torch route cannot make {', '.join(bad)}; it makes "
                              "fp32 and int8", stage="convert", tool="litert-torch",
                              cause=f"unsupported precision {', '.join(bad)}")
    python = ensure_litert_env(progress)
    with tempfile.TemporaryDirectory(prefix="edgeship-litert-") as tmp:
        work = Path(tmp)
        request = _write_request(work, model, out_dir, precisions, calibration, per_channel)
        results = _run_child(python, work, request)
    samples = len(next(iter(calibration.values())))
    made: dict[str, dict[str, Any] | ConversionError] = {}
    for precision in precisions:
        result = results[precision]
        made[precision] = _info(precision, per_channel, samples, result["seconds"]) \
            if result["ok"] else ConversionError(
                f"TFLite export failed: litert-torch ({precision}): {result['error']}; {_HINT}",
                stage="convert", tool="litert-torch", cause=result["error"])
    return made


def _info(precision: str, per_channel: bool, samples: int, seconds: float) -> dict[str, Any]:
    version = LITERT_REQUIREMENTS[0].split("==")[1]
    info: dict[str, Any] = {"tool": "litert-torch", "version": version,
                            "route": ["torch.export", "litert-torch"], "variant": "float32",
                            "io": "float32", "io_layout": "channels-last (as onnx2tf)",
                            "seconds": seconds}
    if precision == "int8":
        info.update(variant="pt2e static int8", io="int8", calibration_samples=samples,
                    options={"mode": "static", "io": "int8", "per_channel": per_channel})
    return info


def _write_request(work: Path, model: Any, out_dir: Path, precisions: list[str],
                   calibration: dict[str, np.ndarray], per_channel: bool) -> Path:
    import torch

    args = tuple(torch.from_numpy(np.ascontiguousarray(v[:1])) for v in calibration.values())
    try:
        exported = torch.export.export(model.eval(), args)
    except Exception as exc:  # not torch.export-able: this route cannot take it
        cause = one_line(exc, limit=400)
        raise ConversionError(f"TFLite export failed: torch.export: {cause}; {_HINT}",
                              stage="export", tool="torch.export", cause=cause) from exc
    torch.export.save(exported, str(work / "model.pt2"))
    calib = []
    for i, (name, arr) in enumerate(calibration.items()):
        kept = arr.dtype if arr.dtype.kind in "iub" else np.float32  # token ids stay integers
        np.save(work / f"calib_{i}.npy", np.ascontiguousarray(arr, dtype=kept))
        calib.append([name, str(work / f"calib_{i}.npy")])
    request = work / "request.json"
    request.write_text(json.dumps({"pt2": str(work / "model.pt2"), "out": str(out_dir),
                                   "precisions": precisions, "calibration": calib,
                                   "per_channel": per_channel}))
    return request


def _run_child(python: Path, work: Path, request: Path) -> dict[str, Any]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)  # the child imports nothing of the host's
    try:
        proc = subprocess.run([str(python), str(_CHILD), str(request)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        cause = f"litert-torch ran over {TIMEOUT_S:.0f} s"
        raise ConversionError(f"TFLite export failed: {cause}; {_HINT}", stage="convert",
                              tool="litert-torch", cause=cause) from exc
    result_file = work / "result.json"
    if not result_file.exists():
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        cause = one_line(lines[-1]) if lines else f"exit status {proc.returncode}, no output"
        raise ConversionError(f"TFLite export failed: litert-torch: {cause}; {_HINT}",
                              stage="convert", tool="litert-torch", cause=cause)
    return json.loads(result_file.read_text())["results"]


def _run(cmd: list[str], tool: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                          check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines()
                 if ln.strip() and not ln.startswith("WARNING: Location")]
        cause = one_line(lines[-1]) if lines else f"exit status {proc.returncode}"
        raise ConversionError(f"creating the litert-torch environment failed ({tool}): {cause}; "
                              "check access to the package index, or use the onnx2tf route",
                              stage="install", tool=tool, cause=cause)
