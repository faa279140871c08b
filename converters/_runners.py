"""Run one artifact with its real runtime, fed in the *source* layout, batch 1.

:class:`OnnxRunner` uses onnxruntime; :class:`TfliteRunner` uses ``ai_edge_litert``'s
interpreter and applies the input ``transpose`` (onnx2tf's NHWC) and int8 quantize / dequantize
with each tensor's own scale and zero point, exactly as the on-board agent does. Both describe
their inputs/outputs in the manifest's form.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import ConversionError

from ._util import layout_name
from .export_tflite import channels_last

__all__ = ["OnnxRunner", "TfliteRunner", "open_runner"]

log = logging.getLogger(__name__)

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(bool)": "bool", "tensor(double)": "float64"}
_CHANNELS_LAST = {3: "NWC", 4: "NHWC", 5: "NDHWC"}
_TFLITE_NAME = re.compile(r"^(serving_default_)?(.*?)(:\d+)?$")


class OnnxRunner:
    """An onnxruntime CPU session over one ONNX file."""

    def __init__(self, path: Path, source_shapes: dict[str, tuple[int, ...]], threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [{"name": i.name, "shape": list(source_shapes[i.name]),
                        "dtype": _ORT_TYPES.get(i.type, i.type), "layout": layout_name(
                            len(source_shapes[i.name])), "source_name": i.name, "transpose": None}
                       for i in self.session.get_inputs()]
        self.outputs = _describe_outputs([o.name for o in self.session.get_outputs()],
                                         self.run(_zeros(self.inputs)), None)

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Native feed for :meth:`invoke` from source-layout arrays."""
        return {i["name"]: np.ascontiguousarray(feeds[i["source_name"]], dtype=i["dtype"])
                for i in self.inputs}

    def invoke(self, native: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference on a prepared feed."""
        return self.session.run(None, native)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference from source-layout arrays; float32 outputs."""
        return [np.asarray(o, dtype=np.float32) for o in self.invoke(self.prepare(feeds))]


class TfliteRunner:
    """An ``ai_edge_litert`` interpreter over one .tflite file."""

    def __init__(self, path: Path, source_shapes: dict[str, tuple[int, ...]], threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from edgeship.logs import native_stderr

        with native_stderr("tflite"):  # "INFO: Created TensorFlow Lite XNNPACK delegate…"
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        details = self.interpreter.get_input_details()
        names = _match_sources([d["name"] for d in details], list(source_shapes))
        self._in = [(d, _transpose(path, d, source_shapes[n])) for d, n in zip(details, names)]
        self.inputs = [{"name": d["name"], "shape": [int(s) for s in d["shape"]],
                        "dtype": np.dtype(d["dtype"]).name,
                        "layout": _CHANNELS_LAST[len(perm)] if perm else layout_name(len(d["shape"])),
                        "source_name": n, "transpose": perm}
                       for (d, perm), n in zip(self._in, names)]
        self._out = self.interpreter.get_output_details()
        self.outputs = _describe_outputs([d["name"] for d in self._out],
                                         [self.interpreter.get_tensor(d["index"]) for d in self._out],
                                         [np.dtype(d["dtype"]).name for d in self._out])

    def prepare(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Transposed (and quantized) arrays in interpreter input order."""
        prepared = []
        for (d, perm), spec in zip(self._in, self.inputs):
            x = feeds[spec["source_name"]]
            x = x.transpose(perm) if perm else x
            prepared.append(np.ascontiguousarray(_quantize(x, d)))
        return prepared

    def invoke(self, native: list[np.ndarray]) -> list[np.ndarray]:
        """One inference on a prepared feed (raw output tensors)."""
        for (d, _), x in zip(self._in, native):
            self.interpreter.set_tensor(d["index"], x)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]) for d in self._out]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference from source-layout arrays; dequantized float32 outputs."""
        return [_dequantize(o, d) for o, d in zip(self.invoke(self.prepare(feeds)), self._out)]


def open_runner(fmt: str, path: Path, source_shapes: dict[str, tuple[int, ...]],
                threads: int) -> OnnxRunner | TfliteRunner:
    """The runner for an artifact of format ``onnx`` or ``tflite``."""
    cls = OnnxRunner if fmt == "onnx" else TfliteRunner
    try:
        return cls(path, source_shapes, threads)
    except ConversionError:
        raise
    except Exception as exc:  # a runtime refusing the file is a conversion failure
        raise ConversionError(f"{path.name} cannot be loaded by its runtime ({exc}); "
                              "the conversion produced a broken artifact") from exc


def _zeros(inputs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {i["source_name"]: np.zeros(i["shape"], dtype=i["dtype"]) for i in inputs}


def _describe_outputs(names: list[str], values: list[np.ndarray],
                      dtypes: list[str] | None) -> list[dict[str, Any]]:
    return [{"name": n, "shape": [int(s) for s in np.shape(v)],
             "dtype": dtypes[i] if dtypes else "float32"}
            for i, (n, v) in enumerate(zip(names, values))]


def _match_sources(tensor_names: list[str], sources: list[str]) -> list[str]:
    """Source input for each TFLite input: by name (``serving_default_<name>:0``), else order."""
    stripped = [_TFLITE_NAME.match(n).group(2) for n in tensor_names]  # type: ignore[union-attr]
    if sorted(stripped) == sorted(sources):
        return stripped
    if len(tensor_names) != len(sources):
        raise ConversionError(f"TFLite model has inputs {tensor_names} but the source has "
                              f"{sources}; re-export the model")
    return list(sources)


def _transpose(path: Path, detail: dict[str, Any], source: tuple[int, ...]) -> list[int] | None:
    shape = tuple(int(s) for s in detail["shape"])
    if shape == tuple(source):
        return None
    perm = channels_last(len(source))
    if perm and tuple(source[p] for p in perm) == shape:
        return perm
    raise ConversionError(f"{path.name}: input {detail['name']} has shape {list(shape)}, which is "
                          f"no layout of the source shape {list(source)}")


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
