"""An onnxruntime session that also returns a model's intermediate tensors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["probe_session"]


def probe_session(model: Any, names: Iterable[str] | None = None, threads: int = 1) -> Any:
    """A session of *model* (an ``onnx.ModelProto``, changed in place) whose outputs are its own
    and the tensors *names* (default: every node output), unoptimised — each tensor as the graph
    computes it —, on *threads* threads, with onnxruntime's own log quiet (a failing probe
    raises; the caller says what it means)."""
    import onnx
    import onnxruntime as ort

    fetched = {o.name for o in model.graph.output}
    wanted = names if names is not None else (o for n in model.graph.node for o in n.output)
    for name in wanted:
        if name and name not in fetched:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
            fetched.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
