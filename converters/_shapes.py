"""Fix the dynamic input dimensions of an ONNX file in place (``--input-shape``).

Edge formats want static shapes (onnx2tf fixes batch at 1 and fails on other symbolic
dimensions). The copy of an ONNX source in the bundle gets the user's sizes written into its
input dims, then ONNX shape inference re-derives the rest; the source file is never touched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.errors import ModelError

from ._util import one_line

__all__ = ["fix_onnx_input_shapes", "onnx_input_shapes"]

log = logging.getLogger(__name__)


def fix_onnx_input_shapes(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Write *shapes* into *path*'s inputs; return what was fixed (for the manifest)."""
    import onnx

    model = onnx.load(str(path))
    for inp in model.graph.input:
        if inp.name not in shapes:
            continue
        for dim, size in zip(inp.type.tensor_type.shape.dim, shapes[inp.name]):
            dim.Clear()
            dim.dim_value = int(size)
    for out in model.graph.output:  # outputs are re-derived from the fixed inputs
        for dim in out.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()
    del model.graph.value_info[:]
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(model)
    except Exception as exc:  # InferenceError, ValidationError
        raise ModelError(f"{path.name}: fixing input shapes {shapes} breaks the graph "
                         f"({one_line(exc)}); give shapes the model accepts") from exc
    original = path.read_bytes()
    onnx.save(model, str(path))
    refused = _ort_refuses(path)
    if refused:  # onnx's inference passed, onnxruntime's (in If/Loop subgraphs) did not
        path.write_bytes(original)
        log.warning("%s: kept the dynamic input shapes: with %s onnxruntime refuses the graph "
                    "(%s)", path.name, shapes, refused)
        return {"kept_dynamic": refused, **{k: list(v) for k, v in shapes.items()}}
    log.info("fixed ONNX input shapes %s", shapes)
    return {k: list(v) for k, v in shapes.items()}


def _ort_refuses(path: Path) -> str | None:
    """onnxruntime's one-line reason for not loading *path*, or ``None`` when it loads."""
    import onnxruntime as ort

    from ._util import ort_cause

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail / InvalidGraph / ...
        return ort_cause(exc)
    return None


def onnx_input_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The graph inputs of an ONNX file (initializers excluded) and their declared shapes
    (``-1`` = dynamic, ``()`` = scalar), in graph order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return {i.name: tuple(d.dim_value or -1 for d in i.type.tensor_type.shape.dim)
            for i in graph.input if i.name not in inits}
