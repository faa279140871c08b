"""The artifacts of ``bench/peers.py``: edgeship's, and what the plain tools give a user.

Each builder takes the fp32 ONNX (or the torch model), the shared calibration arrays and a work
folder, writes its file there and returns its path; a builder that fails raises, and the caller
records the one-line reason. Files are cached: a builder whose output exists is not run again.

- edgeship: :func:`converters.sweep.run_sweep` with the ``rpi4`` profile — ONNX fp32, ONNX int8
  (static QDQ, per-channel), TFLite fp32 and int8 (full-integer, int8 I/O, per-channel), as
  ``edgeship compare`` builds them.
- onnxruntime ``quantize_static`` with its documented defaults (QDQ, per-tensor, MinMax,
  QInt8 activations and weights) and a ``CalibrationDataReader`` over the same calibration
  samples; ``quantize_dynamic`` with its defaults.
- onnx2tf's own int8: the ``onnx2tf -oiqt`` command on the fp32 ONNX with the same calibration
  samples (``-cind NAME data.npy 0 1``; its default, 20 MS-COCO images, is a download), run
  through :mod:`bench._onnx2tf_offline` (the check-data download replaced by those samples).
- litert-torch PT2E int8 (torch sources): :func:`converters.export_litert.export_tflite_torch`,
  litert-torch's symmetric per-channel PT2E config, in its own environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_edgeship", "litert_pt2e", "onnx2tf_int8", "ort_dynamic", "ort_static"]

ONNX2TF_TIMEOUT_S = 480
"""A bench-run bound on onnx2tf (edgeship's own converter child allows 900 s)."""


def build_edgeship(work: Any, out: Path, say: Any) -> dict[str, Any]:
    """edgeship's artifacts of *work* (a :class:`bench.peer_data.Workload`): name → path/error."""
    cached = out / "sweep.json"
    if cached.exists():  # files by their place in *out* (the folder may have been moved)
        rows = json.loads(cached.read_text())["rows"]
        made = {r["name"]: r.get("error") or out.joinpath(*Path(r["file"]).parts[-2:])
                for r in rows}
        if all(isinstance(m, str) or m.exists() for m in made.values()):
            return made
    from converters.sweep import SweepRecipe, prepare, run_sweep
    from profiles import load_profile

    data_file = out / "data.npz"
    out.mkdir(parents=True, exist_ok=True)
    arrays = {**work.inputs, **{f"calibration.{k}": v for k, v in work.calibration.items()}}
    if work.labels is not None:
        arrays["labels"] = work.labels
    np.savez(data_file, **arrays)
    loaded, data = prepare(work.source, data_file, work.input_shapes or None)
    recipes = [SweepRecipe(name="fp32"),
               SweepRecipe(name="edgeship int8 ONNX", precision="int8"),
               SweepRecipe(name="tflite fp32", format="tflite"),
               SweepRecipe(name="edgeship int8 TFLite", format="tflite", precision="int8")]
    if work.metric == "cosine":  # edgeship's advice for transformers: dynamic per-channel
        recipes.insert(2, SweepRecipe(name="edgeship int8 ONNX dynamic", precision="int8",
                                      mode="dynamic"))
    result = run_sweep(loaded, data, load_profile("rpi4"), recipes, out, progress=say, chart=False)
    return {r["name"]: r.get("error") or Path(r["file"]) for r in result.rows}


class _Reader:
    """onnxruntime's CalibrationDataReader over the calibration arrays, one sample a feed."""

    def __init__(self, calibration: dict[str, np.ndarray]) -> None:
        n = len(next(iter(calibration.values())))
        self._feeds = iter([{k: v[i:i + 1] for k, v in calibration.items()} for i in range(n)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed, or ``None`` when the samples are used up."""
        return next(self._feeds, None)


def ort_static(fp32: Path, calibration: dict[str, np.ndarray], out: Path,
               cpu_advice: bool = False) -> Path:
    """``quantize_static(fp32, out, reader)`` with every option at its default; *cpu_advice*:
    its docstring's advice for x86 with VNNI (QUInt8 activations) and per-channel weights."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    if not out.exists():
        reader = type("Reader", (_Reader, CalibrationDataReader), {})(calibration)
        extra: dict[str, Any] = {"activation_type": QuantType.QUInt8, "per_channel": True} \
            if cpu_advice else {}
        quantize_static(str(fp32), str(out), reader, **extra)
    return out


def ort_dynamic(fp32: Path, out: Path) -> Path:
    """``quantize_dynamic(fp32, out)`` with every option at its default."""
    from onnxruntime.quantization import quantize_dynamic

    if not out.exists():
        quantize_dynamic(str(fp32), str(out))
    return out


def onnx2tf_int8(fp32: Path, calibration: dict[str, np.ndarray], folder: Path) -> Path:
    """``onnx2tf -i fp32.onnx -oiqt -cind …``: its full-integer (int8 I/O) file."""
    out = folder / "out" / f"{fp32.stem}_full_integer_quant.tflite"
    if out.exists():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).with_name("_onnx2tf_offline.py")), "-i", str(fp32),
           "-o", str(folder / "out"), "-oiqt"]
    for name, arr in calibration.items():
        path = folder / f"calib.{name}.npy"
        np.save(path, arr.transpose(0, 2, 3, 1) if arr.ndim == 4 else arr)
        cmd += ["-cind", name, str(path), "0.0", "1.0"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    log = folder / "onnx2tf.log"
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=folder, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                  timeout=ONNX2TF_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"onnx2tf ran over {ONNX2TF_TIMEOUT_S} s (stopped by the bench; "
                               f"last log line: {_last_error(log)})") from exc
    if not out.exists():
        raise RuntimeError(f"onnx2tf exited {proc.returncode}: {_last_error(log)}")
    return out


def _last_error(log: Path) -> str:
    """The line of onnx2tf's log that says what went wrong (its ERROR line, else the last)."""
    text = log.read_text(errors="replace").splitlines()
    lines = [ln.strip() for ln in text if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
    pick = errors[-1] if errors else (lines[-1] if lines else "no output")
    return " ".join(pick.replace("\x1b[0m", "").split())[:300]


def litert_pt2e(model: Any, calibration: dict[str, np.ndarray], folder: Path) -> Path:
    """litert-torch PT2E static int8 (its symmetric per-channel config) of the torch *model*."""
    from converters.export_litert import export_tflite_torch, litert_env_ready

    out = folder / "model.int8.tflite"
    if out.exists():
        return out
    if not litert_env_ready():
        raise RuntimeError("the litert-torch environment is not created (make litert-env)")
    folder.mkdir(parents=True, exist_ok=True)
    export_tflite_torch(model, folder, ["int8"], calibration)
    return out


def copy_into(path: Path, folder: Path, name: str) -> Path:
    """*path* copied to ``folder/name`` (artifacts of one workload side by side)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not target.exists():
        shutil.copyfile(path, target)
    return target
