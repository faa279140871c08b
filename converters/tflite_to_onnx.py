"""A ``.tflite`` source → fp32 ONNX (tf2onnx), the source of the profile's other artifacts.

tf2onnx reads the flatbuffer itself; it runs as its own process (``python -m tf2onnx.convert``:
it imports tensorflow, ~5 s and ~1 GB, which the host process does not need) with a time limit,
and its real one-line cause is kept when it fails. fp16 weights (``DEQUANTIZE`` of float16
constants) come out as fp32 initializers; inputs and outputs keep their TFLite names and their
channels-last layout, so the data, the reference and the ONNX artifacts all use the source's
layout. The inputs of rank 3–5 are listed in the model's ``metadata_props``
(:data:`CHANNELS_LAST_KEY`), which tells the TFLite export to keep them channels-last instead of
transposing them a second time.

MediaPipe's custom op ``Convolution2DTransposeBias`` (its segmentation decoders), which tf2onnx
leaves as an unknown ``TFL_`` node, is lowered to ``Transpose → ConvTranspose → Transpose`` with
the stride and padding read from the op's options in the flatbuffer. Any other custom op left in
the graph fails the conversion with its name.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import ConversionError

from .steps import record

__all__ = ["CHANNELS_LAST_KEY", "channels_last_inputs", "lower_custom_ops", "tflite_to_onnx"]

log = logging.getLogger(__name__)

CHANNELS_LAST_KEY = "edgeship.channels_last_inputs"
TIMEOUT_S = 600.0
_TRANSPOSE_CONV = "Convolution2DTransposeBias"
_PADDING = {1: "SAME", 2: "VALID"}  # TfLitePadding


def tflite_to_onnx(tflite: Path, out: Path, opset: int) -> dict[str, Any]:
    """Write *tflite* as fp32 ONNX at *out*; return how it was made (manifest ``converter``).

    Raises :class:`ConversionError` (stage ``convert``, tool ``tf2onnx``) with tf2onnx's own
    one-line cause, and then leaves no file at *out*.
    """
    import onnx

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeship-tf2onnx-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        _run_tf2onnx(tflite, raw, opset)
        model = onnx.load(str(raw))
    lowered = lower_custom_ops(model, lambda: _custom_options(tflite, _TRANSPOSE_CONV))
    unknown = sorted({n.op_type for n in model.graph.node if n.op_type.startswith("TFL_")})
    if unknown:
        cause = f"TFLite custom op(s) with no ONNX equivalent: {', '.join(unknown)}"
        raise ConversionError(f"TFLite → ONNX failed: {cause}; ship the .tflite as it is (drop "
                              "the ONNX artifacts from the profile)", stage="convert",
                              tool="tf2onnx", cause=cause)
    inits = {i.name for i in model.graph.initializer}
    last = [i.name for i in model.graph.input if i.name not in inits
            and 3 <= len(i.type.tensor_type.shape.dim) <= 5]
    if last:
        model.metadata_props.add(key=CHANNELS_LAST_KEY, value=",".join(last))
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    seconds = time.perf_counter() - start
    record("tflite → onnx", seconds)
    log.info("tf2onnx: %s → %s in %.1f s (custom ops lowered: %s)", tflite.name, out.name,
             seconds, ", ".join(lowered) or "none")
    info: dict[str, Any] = {"tool": "tf2onnx", "method": f"TFLite → ONNX opset {opset}",
                            "route": ["tf2onnx"], "seconds": round(seconds, 2)}
    if lowered:
        info["lowered_custom_ops"] = lowered
    return info


def channels_last_inputs(model: Any) -> list[str]:
    """The inputs :func:`tflite_to_onnx` marked channels-last in an ONNX ``ModelProto``."""
    for prop in model.metadata_props:
        if prop.key == CHANNELS_LAST_KEY:
            return [n for n in prop.value.split(",") if n]
    return []


def _run_tf2onnx(tflite: Path, out: Path, opset: int) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore",
               CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--tflite", str(tflite), "--output",
           str(out), "--opset", str(opset)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        cause = f"tf2onnx ran over {TIMEOUT_S:.0f} s"
        raise ConversionError(f"TFLite → ONNX failed: {cause}", stage="convert", tool="tf2onnx",
                              cause=cause) from exc
    if proc.returncode != 0 or not out.exists():
        cause = _cause(proc.stderr) or f"tf2onnx exited with status {proc.returncode}"
        log.debug("tf2onnx output:\n%s", proc.stderr[-4000:])
        raise ConversionError(f"TFLite → ONNX failed: tf2onnx: {cause}; ship the .tflite as it "
                              "is (drop the ONNX artifacts from the profile)", stage="convert",
                              tool="tf2onnx", cause=cause)


def _cause(stderr: str) -> str:
    """tf2onnx's own message: the exception line of its traceback, else its last ERROR line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head:
            return line[:300]
    errors = [ln for ln in lines if " - ERROR - " in ln]
    return (errors[-1].split(" - ERROR - ", 1)[1] if errors else (lines[-1] if lines else ""))[:300]


def lower_custom_ops(model: Any, read_options: Callable[[], dict[str, tuple[str, int, int]]]
                     ) -> list[str]:
    """Replace the MediaPipe transpose-convolution nodes by standard ONNX ops, in place;
    *read_options* gives each node's (padding, stride_w, stride_h) by its output name."""
    from onnx import helper, numpy_helper

    nodes = [n for n in model.graph.node if n.op_type == f"TFL_{_TRANSPOSE_CONV}"]
    if not nodes:
        return []
    options = read_options()
    inits = {i.name: i for i in model.graph.initializer}
    for node in nodes:
        x, weight, bias = node.input
        padding, stride_w, stride_h = options[node.output[0]]
        ohwi = numpy_helper.to_array(inits[weight])  # TFLite: out, kh, kw, in
        kernel = ohwi.shape[1:3]
        iohw = numpy_helper.from_array(ohwi.transpose(3, 0, 1, 2).copy(), f"{weight}__iohw")
        model.graph.initializer.append(iohw)
        pads = _pads(padding, kernel, (stride_h, stride_w))
        base = node.output[0]
        replacement = [
            helper.make_node("Transpose", [x], [f"{base}__nchw"], perm=[0, 3, 1, 2],
                             name=f"{base}__to_nchw"),
            helper.make_node("ConvTranspose", [f"{base}__nchw", iohw.name, bias],
                             [f"{base}__deconv"], strides=[stride_h, stride_w],
                             kernel_shape=list(kernel), pads=pads, name=f"{base}__deconv"),
            helper.make_node("Transpose", [f"{base}__deconv"], [base], perm=[0, 2, 3, 1],
                             name=f"{base}__to_nhwc")]
        at = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        for offset, new in enumerate(replacement):
            model.graph.node.insert(at + offset, new)
    model.graph.ClearField("value_info")  # shapes of the replaced node: inferred again
    return [_TRANSPOSE_CONV]


def _pads(padding: str, kernel: tuple[int, ...], strides: tuple[int, int]) -> list[int]:
    """ConvTranspose pads for TFLite's padding: SAME gives ``in × stride`` outputs, the extra
    padding at the end (as TensorFlow does)."""
    if padding != "SAME":
        return [0, 0, 0, 0]
    total = [max(k - s, 0) for k, s in zip(kernel, strides)]
    begin = [t // 2 for t in total]
    return [*begin, *(t - b for t, b in zip(total, begin))]


def _custom_options(tflite: Path, code: str) -> dict[str, tuple[str, int, int]]:
    """Per output tensor name: (padding, stride_w, stride_h) of each *code* custom op."""
    from tf2onnx.tflite.Model import Model

    model = Model.GetRootAsModel(tflite.read_bytes(), 0)
    codes = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    found: dict[str, tuple[str, int, int]] = {}
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for j in range(graph.OperatorsLength()):
            op = graph.Operators(j)
            if (codes[op.OpcodeIndex()] or b"").decode() != code:
                continue
            raw = op.CustomOptionsAsNumpy().tobytes()
            padding, stride_w, stride_h = struct.unpack("<iii", raw[:12])
            name = graph.Tensors(op.Outputs(0)).Name().decode()
            found[name] = (_PADDING.get(padding, "SAME"), stride_w, stride_h)
    return found
