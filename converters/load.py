"""Load a model source: ``.pt2`` (torch.export), ``package.module:factory``, TorchScript, ONNX,
TFLite (shipped as it is, see :mod:`converters.source_tflite`).

The source is fingerprinted (sha256) first, cheaply for files, so a cached bundle can be found
without importing torch. Heavy libraries are imported inside the loaders only.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError, ModelError

from ._util import file_sha256, import_callable, one_line
from .loaded import LoadedModel, fix_shapes

__all__ = ["LoadedModel", "SourceRef", "fix_shapes", "identify_source", "load_model",
           "parse_input_shapes"]

log = logging.getLogger(__name__)

_SUFFIX_KINDS = {".pt2": "pt2", ".pt": "torchscript", ".ts": "torchscript", ".onnx": "onnx",
                 ".tflite": "tflite"}
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_SHAPE_SPEC = re.compile(r"^([^=\s]+)=(\d+(?:x\d+)*)$")
_NOT_TORCH = ("onnx", "tflite")


@dataclass(frozen=True)
class SourceRef:
    """What the source is, before loading: kind (``pt2|module|torchscript|onnx``) and reference."""

    kind: str
    ref: str

    @property
    def is_torch(self) -> bool:
        """True for every source but ONNX and TFLite."""
        return self.kind not in _NOT_TORCH


def identify_source(source: str) -> SourceRef:
    """Classify *source* by suffix or ``module:factory`` form; a missing file is a ModelError."""
    path = Path(source)
    if _FACTORY.match(source) and not path.exists():
        return SourceRef("module", source)
    kind = _SUFFIX_KINDS.get(path.suffix.lower())
    if kind is None:
        raise ModelError(f"unsupported model source {source!r}; use a .pt2 (torch.export), "
                         ".pt/.ts (TorchScript), .onnx, .tflite file or package.module:factory")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; check the --model path")
    return SourceRef(kind, str(path))


def source_sha256(src: SourceRef) -> str | None:
    """The fingerprint of a file source (its bytes); ``None`` for ``module:factory`` (needs loading)."""
    return None if src.kind == "module" else file_sha256(Path(src.ref))


def load_model(source: str, input_shapes: dict[str, tuple[int, ...]] | None = None) -> LoadedModel:
    """Load *source* (see module doc); ``input_shapes`` gives static shapes when there is no data."""
    src = identify_source(source)
    shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
    if src.kind == "onnx":
        return _load_onnx(Path(src.ref), shapes)
    if src.kind == "tflite":
        from .source_tflite import load_tflite

        return load_tflite(Path(src.ref), shapes)
    loader = {"pt2": _load_pt2, "torchscript": _load_torchscript, "module": _load_factory}[src.kind]
    model = loader(src.ref)
    sha = _state_sha256(model) if src.kind == "module" else file_sha256(Path(src.ref))
    log.info("loaded %s model %s (sha256 %s)", src.kind, src.ref, sha[:12])
    return LoadedModel(src.kind, src.ref, sha, model, tuple(shapes), shapes)


def parse_input_shapes(specs: list[str] | tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    """``["ids=1x128", "mask=1x128"]`` → ``{"ids": (1, 128), ...}``; a bad spec is a ConfigError."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or ():
        match = _SHAPE_SPEC.match(spec.strip())
        if match is None or any(int(d) < 1 for d in match.group(2).split("x")):
            raise ConfigError(f"bad --input-shape {spec!r}; write NAME=DIMSxDIMS with positive "
                              "integers, e.g. --input-shape input=1x3x224x224")
        name = match.group(1)
        if name in shapes:
            raise ConfigError(f"--input-shape gives {name!r} twice; give each input once")
        shapes[name] = tuple(int(d) for d in match.group(2).split("x"))
    return shapes


def _load_pt2(ref: str) -> Any:
    import torch

    try:
        module = torch.export.load(ref).module()
    except Exception as exc:  # torch raises many types for a bad archive
        raise ModelError(f"{ref} is not a loadable torch.export program ({one_line(exc)}); "
                         "re-save it with torch.export.save") from exc
    for sub in module.modules():  # behaviour is baked in at export; eval() is unsupported here
        sub.training = False
    return module


def _load_torchscript(ref: str) -> Any:
    import torch

    try:
        return torch.jit.load(ref, map_location="cpu").eval()
    except Exception as exc:  # RuntimeError, pickle errors, ...
        raise ModelError(f"{ref} is not a loadable TorchScript file ({one_line(exc)}); "
                         "save it with torch.jit.save, or export a .pt2") from exc


def _load_factory(ref: str) -> Any:
    import torch

    factory = import_callable(ref, ModelError, "a torch.nn.Module")
    try:
        model = factory()
    except Exception as exc:  # user code: any failure is a model error
        raise ModelError(f"{ref}() raised {one_line(exc)}; fix the factory") from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{ref}() returned {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _state_sha256(model: Any) -> str:
    """Class qualname + every state_dict tensor (name, dtype, shape, bytes)."""
    import torch

    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _load_onnx(path: Path, shapes: dict[str, tuple[int, ...]]) -> LoadedModel:
    import onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # DecodeError, ValidationError, ...
        raise ModelError(f"{path.name} is not a valid ONNX file ({one_line(exc)}); "
                         "re-export it") from exc
    inits = {i.name for i in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in inits]
    names = tuple(i.name for i in graph_inputs)
    found = {i.name: tuple(d.dim_value or -1 for d in i.type.tensor_type.shape.dim)
             for i in graph_inputs}
    dtypes = {i.name: _onnx_dtype(i.type.tensor_type.elem_type) for i in graph_inputs}
    fixed = fix_shapes(path, found, shapes)
    found.update(fixed)
    outputs = tuple(o.name for o in proto.graph.output)
    sha = file_sha256(path)
    log.info("loaded ONNX %s: inputs %s, outputs %s", path, found, outputs)
    return LoadedModel("onnx", str(path), sha, path, names, found, outputs, dtypes, fixed)


def _onnx_dtype(elem_type: int) -> str:
    import onnx

    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError):
        return "float32"
