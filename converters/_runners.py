"""Run one artifact with its real runtime, fed in the *source* layout, batch 1.

:class:`OnnxRunner` uses onnxruntime; :class:`TfliteRunner` uses ``ai_edge_litert``'s
interpreter and applies the input ``transpose`` (onnx2tf's NHWC) and int8 quantize / dequantize
with each tensor's own scale and zero point, exactly as the on-board agent does. Given the
source's outputs (:class:`SourceOutputs`), ``run`` returns the artifact's outputs in the source's
order and layout, matched by name, index, shape or values (:mod:`converters._outputs`). Both
describe their inputs/outputs in the manifest's form.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from ._outputs import OutputMatch, inverse, match_outputs
from ._util import layout_name
from .export_tflite import channels_last

__all__ = ["OnnxRunner", "SourceOutputs", "TfliteRunner", "open_runner"]

log = logging.getLogger(__name__)

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(bool)": "bool", "tensor(double)": "float64"}
_CHANNELS_LAST = {3: "NWC", 4: "NHWC", 5: "NDHWC"}
_TFLITE_NAME = re.compile(r"^(serving_default_)?(.*?)(:\d+)?$")


@dataclass(frozen=True)
class SourceOutputs:
    """The source model's outputs: names and batch-1 shapes in order, and optionally one sample's
    feed and outputs (to tell outputs or layouts apart by their values when nothing else can)."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    feed: dict[str, np.ndarray] | None = None
    expected: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def specs(self) -> list[tuple[str, tuple[int, ...]]]:
        """``(name, shape)`` per output."""
        return list(zip(self.names, self.shapes))


class OnnxRunner:
    """An onnxruntime CPU session over one ONNX file."""

    def __init__(self, path: Path, source_shapes: dict[str, tuple[int, ...]], threads: int,
                 source: SourceOutputs | None = None,
                 example: dict[str, np.ndarray] | None = None, spin: bool = True) -> None:
        """*example*: a real sample (source layout) to learn the outputs' shapes from when
        *source* has none; zeros otherwise — which some models refuse (a sample rate of 0).
        ``spin=False``: idle threads sleep instead of spinning (outputs only, not timing: on a
        busy 2-core host two spinning threads ran EfficientNet-Lite0 at 54 ms, sleeping 30)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [{"name": i.name, "shape": list(source_shapes[i.name]),
                        "dtype": _ORT_TYPES.get(i.type, i.type), "layout": layout_name(
                            len(source_shapes[i.name]), source_shapes[i.name]), "source_name": i.name, "transpose": None}
                       for i in self.session.get_inputs()]
        names = [o.name for o in self.session.get_outputs()]
        first = source.feed if source is not None and source.feed else example
        raw = self.invoke(self.prepare(first if first is not None else _zeros(self.inputs)))
        self._map = _match(source, [[n] for n in names], raw, lambda: self.invoke(
            self.prepare(source.feed)) if source and source.feed else None)
        self.outputs = _describe_outputs(names, raw, self._map, source, None)

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Native feed for :meth:`invoke` from source-layout arrays."""
        return {i["name"]: np.require(feeds[i["source_name"]], i["dtype"], "C")  # keeps scalars 0-d
                for i in self.inputs}

    def invoke(self, native: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference on a prepared feed."""
        return self.session.run(None, native)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference from source-layout arrays; float32 outputs in the source's order."""
        return _to_source(self.invoke(self.prepare(feeds)), self._map)


class TfliteRunner:
    """An ``ai_edge_litert`` interpreter over one .tflite file."""

    def __init__(self, path: Path, source_shapes: dict[str, tuple[int, ...]], threads: int,
                 source: SourceOutputs | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from core.logs import native_stderr

        with native_stderr("tflite"):  # "INFO: Created TensorFlow Lite XNNPACK delegate…"
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        details = self.interpreter.get_input_details()
        names = _match_sources([d["name"] for d in details], list(source_shapes))
        self._in = [(d, _transpose(path, d, source_shapes[n])) for d, n in zip(details, names)]
        self.inputs = [{"name": d["name"], "shape": [int(s) for s in d["shape"]],
                        "dtype": np.dtype(d["dtype"]).name,
                        "layout": _CHANNELS_LAST[len(perm)] if perm else layout_name(len(d["shape"]),
                                                                                   d["shape"]),
                        "source_name": n, "transpose": perm}
                       for (d, perm), n in zip(self._in, names)]
        self._out = self.interpreter.get_output_details()
        names = _signature_names(self.interpreter, self._out)
        raw = [self.interpreter.get_tensor(d["index"]) for d in self._out]
        self._map = _match(source, names, raw, lambda: self._dequantized(
            self.invoke(self.prepare(source.feed))) if source and source.feed else None)
        self.outputs = _describe_outputs([d["name"] for d in self._out], raw, self._map, source,
                                         [np.dtype(d["dtype"]).name for d in self._out])

    def prepare(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Transposed (and quantized) arrays in interpreter input order."""
        prepared = []
        for (d, perm), spec in zip(self._in, self.inputs):
            x = feeds[spec["source_name"]]
            x = x.transpose(perm) if perm else x
            if x.ndim != len(d["shape"]) and x.size == int(np.prod(d["shape"])):
                x = x.reshape(d["shape"])
            prepared.append(np.require(_quantize(x, d), requirements="C"))  # keeps scalars 0-d
        return prepared

    def invoke(self, native: list[np.ndarray]) -> list[np.ndarray]:
        """One inference on a prepared feed (raw output tensors)."""
        for (d, _), x in zip(self._in, native):
            self.interpreter.set_tensor(d["index"], x)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]) for d in self._out]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference from source-layout arrays; dequantized float32 outputs in the source's
        order and layout."""
        return _to_source(self._dequantized(self.invoke(self.prepare(feeds))), self._map)

    def _dequantized(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        return [_dequantize(o, d) for o, d in zip(raw, self._out)]


def open_runner(fmt: str, path: Path, source_shapes: dict[str, tuple[int, ...]],
                threads: int, source: SourceOutputs | None = None,
                example: dict[str, np.ndarray] | None = None) -> OnnxRunner | TfliteRunner:
    """The runner for an artifact of format ``onnx`` or ``tflite``; *source* describes the
    outputs to match (``None``: the artifact's own, as listed); *example*: a real sample for
    an ONNX runner's first inference when *source* has none."""
    try:
        if fmt == "onnx":
            return OnnxRunner(path, source_shapes, threads, source, example)
        return TfliteRunner(path, source_shapes, threads, source)
    except ConversionError:
        raise
    except Exception as exc:  # a runtime refusing the file is a conversion failure
        raise ConversionError(f"{path.name} cannot be loaded by its runtime ({exc}); "
                              "the conversion produced a broken artifact") from exc


def _zeros(inputs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {i["source_name"]: np.zeros(i["shape"], dtype=i["dtype"]) for i in inputs}


def _signature_names(interpreter: Any, details: list[dict[str, Any]]) -> list[list[str]]:
    """Per output detail: its signature key (when the file has one signature) and tensor name."""
    known = [[d["name"]] for d in details]
    signatures = interpreter.get_signature_list()
    if len(signatures) == 1:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        by_index = {v["index"]: k for k, v in runner.get_output_details().items()}
        known = [[by_index[d["index"]], d["name"]] if d["index"] in by_index else [d["name"]]
                 for d in details]
    return known


def _match(source: SourceOutputs | None, names: list[list[str]], raw: list[np.ndarray],
           probe: Any) -> list[OutputMatch]:
    shapes = [tuple(int(x) for x in np.shape(v)) for v in raw]
    if source is None:
        return [OutputMatch(i, i, None, "as listed") for i in range(len(raw))]
    return match_outputs(names, shapes, source.specs, probe, source.expected)


def _to_source(raw: list[np.ndarray], matches: list[OutputMatch]) -> list[np.ndarray]:
    """Artifact outputs → the source's order and layout, float32."""
    out = []
    for m in matches:
        y = np.asarray(raw[m.index], dtype=np.float32)
        out.append(np.ascontiguousarray(y.transpose(inverse(m.transpose))) if m.transpose else y)
    return out


def _describe_outputs(names: list[str], values: list[np.ndarray], matches: list[OutputMatch],
                      source: SourceOutputs | None,
                      dtypes: list[str] | None) -> list[dict[str, Any]]:
    """Manifest ``outputs``, in the source's order: each with the artifact tensor it is."""
    described = []
    for m in matches:
        shape = [int(s) for s in np.shape(values[m.index])]
        described.append({
            "name": names[m.index], "source_name": source.names[m.source] if source else
            names[m.index], "shape": shape, "dtype": dtypes[m.index] if dtypes else
            np.asarray(values[m.index]).dtype.name,
            "layout": _CHANNELS_LAST[len(shape)] if m.transpose else layout_name(len(shape),
                                                                                  shape),
            "transpose": m.transpose, "matched_by": m.matched_by})
    return described


def _match_sources(tensor_names: list[str], sources: list[str]) -> list[str]:
    """Source input for each TFLite input: by name (``serving_default_<name>:0``), else order."""
    stripped = [_TFLITE_NAME.match(n).group(2) for n in tensor_names]  # type: ignore[union-attr]
    if sorted(stripped) == sorted(sources) or (  # or fewer: inputs fixed at conversion
            len(set(stripped)) == len(stripped) < len(sources) and set(stripped) <= set(sources)):
        return stripped
    if len(tensor_names) != len(sources):
        raise ConversionError(f"TFLite model has inputs {tensor_names} but the source has "
                              f"{sources}; re-export the model")
    return list(sources)


def _transpose(path: Path, detail: dict[str, Any], source: tuple[int, ...]) -> list[int] | None:
    shape = tuple(int(s) for s in detail["shape"])
    if shape == tuple(source) or _same_but_unit_axes(shape, tuple(source)):
        return None  # a scalar fed as [1] (onnx2tf): reshaped in prepare
    perm = channels_last(len(source))
    if perm and tuple(source[p] for p in perm) == shape:
        return perm
    raise ConversionError(f"{path.name}: input {detail['name']} has shape {list(shape)}, which is "
                          f"no layout of the source shape {list(source)}")


def _same_but_unit_axes(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Shapes that differ only by axes of length 1 (``()`` and ``(1,)``)."""
    return len(a) != len(b) and [d for d in a if d != 1] == [d for d in b if d != 1]


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype, copy=False)
    scale, zero = detail["quantization"]
    if not scale:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero = detail["quantization"]
    if np.dtype(detail["dtype"]).kind == "f" or not scale:
        return y.astype(np.float32)
    return (y.astype(np.float32) - zero) * np.float32(scale)
