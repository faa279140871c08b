"""Small helpers shared by the converters: hashing, tool versions, one-line error causes."""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "file_sha256",
    "layout_name",
    "one_line",
    "op_hint",
    "ort_cause",
    "tool_versions",
]

FORMAT_VERSION = 2
"""Bumped whenever the converters change what they write, so old cached bundles are not reused.

2: per-artifact isolation (manifest ``left_out``), fp16 fallbacks named fp16, bounded sensitivity.
"""

_DISTRIBUTIONS = {
    "edgeship": ("edgeship",),
    "torch": ("torch",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "onnx2tf": ("onnx2tf",),
}
_HASH_ONLY = {"onnxscript": ("onnxscript",), "ai_edge_litert": ("ai-edge-litert",),
              "onnxslim": ("onnxslim",)}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ORT_NOISE = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : |/onnxruntime_src/\S+ |"
                        r"onnxruntime::[\w:~]+\([^)]*\)(?: const)? ")
_LAYOUTS = {2: "NC", 3: "NCW", 4: "NCHW", 5: "NCDHW"}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def tool_versions(*, for_hash: bool = False) -> dict[str, str | None]:
    """Installed versions of the tools that make artifacts (read from metadata, nothing imported).

    With ``for_hash`` the dict also holds tools that change the artifacts but are not part of the
    manifest's ``tools`` contract (the ONNX script exporter, the TFLite interpreter).
    """
    table = dict(_DISTRIBUTIONS, **_HASH_ONLY) if for_hash else _DISTRIBUTIONS
    return {key: _version(names) for key, names in table.items()}


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """A readable single line for an exception or a captured log (ANSI colours stripped)."""
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        text = exc
    text = " ".join(_ANSI.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ort_cause(exc: BaseException) -> str:
    """:func:`one_line` of an onnxruntime error without its source paths and C++ signatures."""
    return one_line(_ORT_NOISE.sub("", f"{type(exc).__name__}: {exc}"))


def layout_name(ndim: int, shape: Any = None) -> str:
    """Layout name of a tensor of *ndim* dimensions: the torch/ONNX channels-first convention,
    except a 4-D *shape* whose last axis is a colour/mask channel count (1-4) and whose second is
    not (``[1, 128, 128, 3]``: a TFLite source's image) is ``NHWC``."""
    if ndim == 4 and shape is not None and len(shape) == 4:
        dims = [int(d) if d is not None and int(d) > 0 else 0 for d in shape]
        if 1 <= dims[3] <= 4 and dims[1] > 4:
            return "NHWC"
    return _LAYOUTS.get(ndim, "ND")


def import_callable(ref: str, error: type[Exception], returns: str) -> Callable[..., Any]:
    """``package.module:attr.path`` → that callable; *error* (one line) when it is not there.

    *returns* completes the hint, e.g. ``"a torch.nn.Module"``.
    """
    module_name, _, attr = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"cannot import {module_name!r} for {ref} ({one_line(exc)}); "
                    "check the module path and that it is importable") from exc
    for part in attr.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise error(f"{module_name!r} has no callable {attr!r}; "
                    f"give package.module:function returning {returns}")
    return target


def op_hint(exc: BaseException | str, model_path: Path) -> str:
    """`` at node N (op T)`` when the error names a node or op type of the model, else ``""``."""
    try:
        import onnx

        nodes = onnx.load(str(model_path), load_external_data=False).graph.node
    except Exception:  # the hint is best effort; the error itself is raised by the caller
        return ""
    text = str(exc)
    for node in nodes:
        if node.name and re.search(rf"\b{re.escape(node.name)}\b", text):
            return f" at node {node.name} (op {node.op_type})"
    ops = sorted({n.op_type for n in nodes if re.search(rf"\b{n.op_type}\b", text)})
    return f" (op {', '.join(ops)})" if ops else ""
