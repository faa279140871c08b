"""TFLite side of :mod:`converters.divergence`: every tensor kept, paired with ONNX by values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .verify import METRIC, relative_rms

__all__ = ["first_tflite"]


def first_tflite(artifact: Path, feeds: list[dict[str, Any]], ref: dict[str, np.ndarray],
                 order: list[tuple[str, str, str, list[str]]], threshold: float
                 ) -> dict[str, Any]:
    """The first TFLite op (execution order) whose output matches no float ONNX tensor within
    *threshold*, with ``onnx_candidate``: the first ONNX node of that output shape after the last
    matched one; ``ref``/``order`` as made by ``divergence._onnx_tensors``."""

    ops, tensors = _tflite_tensors(artifact, feeds)
    position = {t: i for i, (_, _, t, _) in enumerate(order)}
    compared, last = 0, -1  # last: topological position of the latest matched ONNX tensor
    matched: set[str] = set()
    for op in ops:
        for index in op["outputs"]:
            got = tensors.get(int(index))
            best = None if got is None else _nearest(got[1], ref)
            if best is None:
                continue
            compared += 1
            value, tensor = best
            if value <= threshold:
                last = max(last, position.get(tensor, -1))
                matched.add(tensor)
                continue
            node = _next_of_shape(got[1], ref, order, last, matched)
            return {"op": op["op_name"], "name": got[0], "tensor": got[0], "metric": METRIC,
                    "value": float(f"{value:.4g}"), "threshold": threshold,
                    "matched_by": "values", "onnx_candidate": node,
                    "layers_compared": compared}
    return {"op": None, "metric": METRIC, "threshold": threshold, "matched_by": "values",
            "layers_compared": compared}


def _tflite_tensors(path: Path, feeds: list[dict[str, Any]]
                    ) -> tuple[list[dict[str, Any]], dict[int, tuple[str, np.ndarray]]]:
    """Op list (execution order, delegates left out) and every op output, dequantized to float
    and stacked over *feeds* (weights are left out)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from ._runners import TfliteRunner

    runner = TfliteRunner(path, {k: v.shape for k, v in feeds[0].items()}, 1)
    interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=(
                             OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interp.allocate_tensors()
    ops = [o for o in interp._get_ops_details() if o["op_name"] != "DELEGATE"]  # noqa: SLF001
    produced = {int(i) for o in ops for i in o["outputs"]}
    details = {d["index"]: d for d in interp.get_tensor_details() if d["index"] in produced}
    runs: dict[int, list[np.ndarray]] = {}
    for feed in feeds:
        for (d, _), x in zip(runner._in, runner.prepare(feed)):  # noqa: SLF001 - same layout
            interp.set_tensor(d["index"], x)
        interp.invoke()
        for index, d in details.items():
            value = _dequantized(interp, d)
            if value is not None:
                runs.setdefault(index, []).append(value)
    tensors = {i: (details[i]["name"], np.stack(v)) for i, v in runs.items()}
    return ops, tensors


def _dequantized(interp: Any, detail: dict[str, Any]) -> np.ndarray | None:
    dtype = np.dtype(detail["dtype"])
    try:
        value = interp.get_tensor(detail["index"])
    except ValueError:  # a tensor the interpreter did not keep
        return None
    scale, zero = detail.get("quantization", (0.0, 0))
    if dtype.kind == "f":
        return value.astype(np.float32)
    if dtype.kind in "iu" and scale:
        return (value.astype(np.float32) - zero) * np.float32(scale)
    return None


def _nearest(got: np.ndarray, ref: dict[str, np.ndarray]) -> tuple[float, str] | None:
    """``(relative RMS error, ONNX tensor)`` of the closest same-shaped float ONNX tensor."""

    best = None
    for name, want in ref.items():
        for view in _views(got, want.shape):
            value = relative_rms(view, want)
            if best is None or value < best[0]:
                best = (value, name)
    return best


def _next_of_shape(got: np.ndarray, ref: dict[str, np.ndarray],
                   order: list[tuple[str, str, str, list[str]]], last: int,
                   matched: set[str]) -> dict[str, str] | None:
    """The ONNX node this TFLite op most likely stands for: the first one of *got*'s output shape
    after the last matched one, else (the interpreter ran branches in another order) the first
    of that shape not matched yet."""
    for op, name, tensor, _ in [*order[last + 1:], *order[:last + 1]]:
        if tensor not in matched and _views(got, ref[tensor].shape):
            return {"op": op, "name": name, "tensor": tensor}
    return None


def _views(got: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """*got* as the ONNX tensor of *shape* (same layout, or back from channels-last)."""
    views = [got] if got.shape == shape else []
    n = len(shape) - 1  # without the stacked-samples axis
    if 3 <= n <= 5 and got.ndim == len(shape):
        back = [0, 1, n, *range(2, n)]  # [S, N, H, W, C] → [S, N, C, H, W]
        if got.transpose(back).shape == shape:
            views.append(got.transpose(back))
    return views
