"""JetPack-aware provisioning: what a Jetson has, and the runtime plan built on it.

A Jetson's GPU is reached through the board's own JetPack: TensorRT's Python bindings live in the
*system* Python (``python3-libnvinfer``), and no onnxruntime with CUDA/TensorRT providers is on
PyPI (NVIDIA publishes Jetson builds elsewhere). So the plan for a Jetson is:

* a venv created with ``--system-site-packages``, so the agent sees the board's ``tensorrt``;
* onnxruntime with GPU providers only from a source the user names (``edgeship_ort_wheel`` /
  ``edgeship_ort_index`` in the inventory, or ``runtime.ort_wheel`` / ``ort_index`` in the
  profile);
* PyPI's CPU onnxruntime only as a *labelled* fallback (the ONNX reference, and whatever TensorRT
  cannot build), never silently in the GPU's place: with neither TensorRT bindings nor a GPU
  onnxruntime source, a profile with ``runtime.accelerator: required`` is refused with the fix.

Everything here is pure (facts in, plan out), so the plan is tested on captured JetPack files.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ShipError

from .jetpack_facts import jetson_software, parse_packages

__all__ = ["OrtSource", "RuntimePlan", "jetson_facts", "ort_source", "plan_runtime"]

log = logging.getLogger(__name__)

JETSON_NUMPY = "numpy<2"  # JetPack's TensorRT bindings are built against numpy 1.x
_WHEEL = re.compile(r"^(?P<dist>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-"
                    r"(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


@dataclass(frozen=True)
class OrtSource:
    """Where the user's onnxruntime with GPU providers comes from: a wheel file or an index."""

    wheel: str | None = None
    index: str | None = None
    origin: str = "inventory"

    def describe(self) -> str:
        """One phrase for plans and reports."""
        what = f"wheel {Path(self.wheel).name}" if self.wheel else f"index {self.index}"
        return f"{what} (from the {self.origin})"


@dataclass(frozen=True)
class RuntimePlan:
    """What to install on the board and why (recorded in the board fingerprint)."""

    jetson: bool
    system_site_packages: bool = False
    requirements: tuple[str, ...] | None = None  # None: the default PyPI runtimes
    downloads: tuple[str, ...] | None = None  # what pip fetches (a wheel path replaces its req)
    extra_index: str | None = None
    tensorrt: str | None = None
    onnxruntime: str = "PyPI"
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for reports."""
        return asdict(self)


def jetson_facts(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The probe's raw JetPack output → facts (``None`` on a board that is not a Jetson)."""
    software = jetson_software(raw.get("tegra_release") or "",
                               parse_packages(raw.get("packages") or ""))
    if not software.pop("is_jetson"):
        return None
    python = raw.get("python_modules") or {}
    return {**software, "tensorrt_python": python.get("tensorrt"),
            "tensorrt_python_error": python.get("tensorrt_error"),
            "cuda_python": python.get("cuda"), "pycuda": python.get("pycuda"),
            "trtexec": raw.get("trtexec"), "tools": raw.get("tools") or {},
            "sysroot": raw.get("sysroot") or None}


def ort_source(board: Any, profile: Any | None) -> OrtSource | None:
    """The GPU onnxruntime source: inventory host vars first, then the profile's runtime."""
    if getattr(board, "ort_wheel", None) or getattr(board, "ort_index", None):
        return OrtSource(board.ort_wheel, board.ort_index, "inventory")
    runtime = getattr(profile, "runtime", None)
    if runtime is not None and (runtime.ort_wheel or runtime.ort_index):
        return OrtSource(runtime.ort_wheel, runtime.ort_index, f"profile {profile.name}")
    return None


def plan_runtime(facts: Any, source: OrtSource | None, accelerator: str = "none",
                 board_name: str = "?") -> RuntimePlan:
    """The runtime plan for a board with *facts* (:class:`runtimes.provision.BoardFacts`).

    Raises:
        ShipError: a Jetson with neither TensorRT bindings nor a GPU onnxruntime source while
            the profile requires an accelerator, or a named wheel that cannot run on the board.
    """
    jetson = getattr(facts, "jetson", None)
    if not jetson:
        return RuntimePlan(jetson=False)
    trt = jetson.get("tensorrt_python")
    found = f"L4T {jetson['l4t']} (JetPack {jetson.get('jetpack') or '?'})"
    notes = [f"Jetson: {found}, CUDA {jetson.get('cuda') or '?'}, cuDNN "
             f"{jetson.get('cudnn') or '?'}, TensorRT {jetson.get('tensorrt') or 'not installed'}"]
    extra = _cuda_binding(jetson, notes) if trt else ()
    if trt:
        notes.append(f"TensorRT {trt}: the system Python's bindings, seen through "
                     "--system-site-packages; it builds the engines of runner: tensorrt artifacts")
    if source is not None:
        return _with_source(facts, source, trt, notes, extra)
    if not trt and accelerator == "required":
        raise ShipError(_no_gpu_runtime(jetson, board_name, found, "edgeship needs one"))
    warning = ("onnxruntime from PyPI is a CPU build: ONNX artifacts on onnxruntime run on the "
               "CPU (reported as such); set edgeship_ort_wheel=… or edgeship_ort_index=… for a "
               "build with CUDA/TensorRT providers" if trt else _no_gpu_runtime(
                   jetson, board_name, found,
                   "installing the CPU fallback, every figure will be the CPU's; to use the GPU"))
    log.warning("board %r: %s", board_name, warning)
    return RuntimePlan(jetson=True, system_site_packages=True,
                       requirements=("onnxruntime", JETSON_NUMPY, *extra), tensorrt=trt,
                       onnxruntime="PyPI onnxruntime (CPU only, labelled fallback)",
                       notes=tuple(notes), warnings=(warning,))


def _no_gpu_runtime(jetson: dict[str, Any], board: str, found: str, then: str) -> str:
    why = jetson.get("tensorrt_python_error") or "No module named 'tensorrt'"
    if str(jetson.get("l4t", "")).startswith("32."):
        return (f"board {board!r} is a Jetson ({found}) whose TensorRT bindings belong to its "
                f"Python 3.6, which the agent (3.8+) cannot use, and no onnxruntime-gpu source is "
                f"set; {then}: set edgeship_ort_wheel=/path/to/onnxruntime_gpu-…-cp38-….whl "
                f"(a JetPack 4 build for Python 3.8) for this board in the inventory")
    return (f"board {board!r} is a Jetson ({found}) without a GPU runtime: the system Python "
            f"cannot import tensorrt ({why}) and no onnxruntime-gpu source is set; {then}"
            f": install JetPack's TensorRT Python bindings (sudo apt-get install "
            f"python3-libnvinfer) or set edgeship_ort_wheel=/path/to/onnxruntime_gpu-….whl (or "
            f"edgeship_ort_index=URL) for this board in the inventory")


def _cuda_binding(jetson: dict[str, Any], notes: list[str]) -> tuple[str, ...]:
    """cuda-python for TensorRT's buffers, matching the board's CUDA major, unless the system
    Python already has cuda-python or pycuda."""
    if jetson.get("cuda_python") or jetson.get("pycuda"):
        have = "cuda-python" if jetson.get("cuda_python") else "pycuda"
        notes.append(f"CUDA buffers through the system's {have}")
        return ()
    cuda = jetson.get("cuda") or ""
    major = int(cuda.split(".")[0]) if cuda.split(".")[0].isdigit() else (
        12 if str(jetson.get("l4t", "")).startswith("36") else 11)
    notes.append(f"CUDA buffers through cuda-python {major}.x (installed in the venv)")
    return (f"cuda-python>={major}.0,<{major + 1}",)


def _with_source(facts: Any, source: OrtSource, trt: str | None, notes: list[str],
                 extra: tuple[str, ...] = ()) -> RuntimePlan:
    warnings: list[str] = []
    if source.index:
        reqs = ("onnxruntime-gpu", JETSON_NUMPY, *extra)
        return RuntimePlan(jetson=True, system_site_packages=True, requirements=reqs,
                           downloads=reqs, extra_index=source.index, tensorrt=trt,
                           onnxruntime=f"onnxruntime-gpu from {source.describe()}",
                           notes=tuple(notes))
    wheel = Path(source.wheel or "")
    m = _WHEEL.match(wheel.name)
    if not wheel.is_file() or not m:
        raise ShipError(f"edgeship_ort_wheel {wheel} ({source.origin}) is not a wheel file on "
                        "this host; download NVIDIA's onnxruntime-gpu wheel for the board's "
                        "JetPack and Python and give its path")
    _check_wheel_fits(facts, wheel.name, m)
    if m["dist"].lower().replace(".", "_") != "onnxruntime_gpu":
        warnings.append(f"{wheel.name} is named {m['dist']}, not onnxruntime_gpu: it may be a "
                        "CPU build; the agent reports which providers it really offers")
    req = f"{m['dist']}=={m['version']}"
    return RuntimePlan(jetson=True, system_site_packages=True,
                       requirements=(req, JETSON_NUMPY, *extra),
                       downloads=(str(wheel.resolve()), JETSON_NUMPY, *extra), tensorrt=trt,
                       onnxruntime=f"{m['dist']} {m['version']} from {source.describe()}",
                       notes=tuple(notes), warnings=tuple(warnings))


def _check_wheel_fits(facts: Any, name: str, m: re.Match[str]) -> None:
    py_ok = facts.abi in m["py"].split(".") or m["abi"] == "abi3" or m["py"].startswith("py3")
    plat_ok = m["plat"] == "any" or facts.machine in m["plat"]
    if not (py_ok and plat_ok):
        raise ShipError(f"wheel {name} is for {m['py']}/{m['plat']}, but the board runs Python "
                        f"{facts.python_xy} on {facts.machine}; get the onnxruntime-gpu wheel "
                        f"built for this JetPack and {facts.abi}")
