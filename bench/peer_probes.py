"""Measured explanations for ``bench/peers.py``: small experiments that say *why* an int8 file
is slow, run in the same bench run so the notes quote figures, not beliefs.

- :func:`hardswish_probe`: a 12-layer depthwise/1x1 net with ReLU6, then with hard-swish,
  converted by ``tf.lite.TFLiteConverter`` to fp32 and full-integer int8 and timed with XNNPACK
  (1 thread): is int8 HARD_SWISH fast on this host? (runs in a child: it imports TensorFlow)
- :func:`ort_activation_probe`: the workload's fp32 ONNX, ``quant_pre_process``-ed (as edgeship
  does) or not, quantized by ``quantize_static`` with int8 or uint8 activations (per-channel),
  each timed against fp32 on onnxruntime: which combination fuses its Q/DQ Convs here?

    python bench/peer_probes.py hardswish        # prints the JSON
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["hardswish_probe", "ort_activation_probe"]


def _median_ms(invoke: Callable[[], object], runs: int = 30) -> float:
    for _ in range(5):
        invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        invoke()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1e3, 3)


def _hardswish_child() -> dict[str, Any]:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    def net(act: Callable[[Any], Any]) -> Any:
        x = inp = tf.keras.Input((112, 112, 32), batch_size=1)
        for _ in range(6):
            x = tf.keras.layers.Lambda(act)(tf.keras.layers.DepthwiseConv2D(3, padding="same")(x))
            x = tf.keras.layers.Lambda(act)(tf.keras.layers.Conv2D(32, 1)(x))
        return tf.keras.Model(inp, x)

    def tflite(model: Any, int8: bool) -> bytes:
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if int8:
            rng = np.random.default_rng(0)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([rng.random((1, 112, 112, 32), np.float32)]
                                                   for _ in range(8))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int8
        return conv.convert()

    def timed(blob: bytes) -> float:
        interp = Interpreter(model_content=blob, num_threads=1)
        interp.allocate_tensors()
        return _median_ms(interp.invoke)

    out = {}
    for name, act in (("relu6", tf.nn.relu6), ("hard_swish", lambda x: x * tf.nn.relu6(x + 3) / 6)):
        model = net(act)
        out[name] = {"fp32_ms": timed(tflite(model, False)), "int8_ms": timed(tflite(model, True))}
        out[name]["int8_ratio"] = round(out[name]["int8_ms"] / out[name]["fp32_ms"], 3)
    return out


def hardswish_probe() -> dict[str, Any]:
    """fp32 vs int8 TFLite latency of the same net with ReLU6 and with hard-swish (a child)."""
    proc = subprocess.run([sys.executable, __file__, "hardswish"], capture_output=True,
                          text=True, timeout=600, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return {"error": (err[-1] if err else f"exit {proc.returncode}")[:240]}
    return json.loads(lines[-1])


def ort_activation_probe(fp32: Path, calibration: dict[str, np.ndarray]) -> dict[str, Any]:
    """Latency ratio vs fp32 of quantize_static per-channel with int8 / uint8 activations, on
    the graph as it is and after ``quant_pre_process`` (1 thread)."""
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantType, quant_pre_process,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            n = len(next(iter(calibration.values())))
            self.feeds = iter([{k: v[i:i + 1] for k, v in calibration.items()}
                               for i in range(min(n, 16))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    feed = {k: v[:1] for k, v in calibration.items()}

    def timed(path: Path) -> float:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return _median_ms(lambda: sess.run(None, feed))

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="peers-probe-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        for graph, src in (("as exported", fp32), ("pre-processed", pre)):
            base = timed(src)
            for act in ("QInt8", "QUInt8"):
                q = Path(tmp) / f"{graph}-{act}.onnx"
                quantize_static(str(src), str(q), Reader(), per_channel=True,
                                activation_type=getattr(QuantType, act))
                out[f"{graph}, {act} activations"] = round(timed(q) / base, 3)
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["hardswish"]:
        sys.exit("usage: python bench/peer_probes.py hardswish")
    print(json.dumps(_hardswish_child()))
