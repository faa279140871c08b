"""Static int8 for weights inside ``If`` branches: take the branch the data always takes.

onnxruntime's static quantizers skip If/Loop subgraphs (:mod:`converters.quantize_subgraphs`),
so a model whose network sits in the branches of an ``If`` on a setting — Silero VAD chooses its
16 / 8 kHz network on the sample rate ``sr`` — gets only dynamic int8 (``ConvInteger``; 305 of
Silero's 518 speech decisions flipped) and, for TensorRT, no int8 at all. When the calibration
data holds such a setting at one value (a scalar integer input), :func:`take_branches` makes it a
constant and onnxslim keeps the one branch it takes (the ``constant inputs`` clean-up of
:func:`converters.onnx_cleanup.clean_onnx`, as the TFLite route does): the int8 artifact serves
that value only and no longer takes the input (``fixed_inputs`` in its converter info); the
board's agent feeds an artifact the inputs it declares.

onnxslim runs in a child process: imported, it lowers onnxruntime's process-wide log severity.
(onnxruntime's own graph optimiser cannot do it: its ``If`` inlining fails on Silero's branch,
"… is not If node's input or previous node output in this subgraph".)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from ._util import one_line

__all__ = ["constant_settings", "take_branches"]

_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300


def constant_settings(model: Path, calibration: dict[str, np.ndarray]) -> dict[str, int]:
    """Scalar integer inputs of *model* that the data holds at one value (name → value), when
    the main graph branches (``If``) and weights sit in its subgraphs; else ``{}``."""
    import onnx

    from .quantize_subgraphs import subgraph_weight_count

    graph = onnx.load(str(model), load_external_data=False).graph
    if not any(n.op_type == "If" for n in graph.node) or not subgraph_weight_count(model):
        return {}
    scalars = {i.name for i in graph.input if not i.type.tensor_type.shape.dim}
    return {name: int(arr.flat[0]) for name, arr in calibration.items()
            if name in scalars and np.issubdtype(arr.dtype, np.integer) and arr.size
            and (arr == arr.flat[0]).all()}


def take_branches(src: Path, out: Path, values: dict[str, int],
                  calibration: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Write *src* with the inputs of *values* made constants and the branches they take kept
    (onnxslim, in a child process) to *out*; return the clean-up steps (manifest form). The
    other inputs are fixed at the shape of one calibration sample (Silero's inner ``If`` nodes
    test the chunk length). Raises :class:`ConversionError` when no branch could be taken."""
    request = out.with_suffix(".json")
    request.write_text(json.dumps({"source": str(src), "out": str(out), "values": values,
                                   "shapes": _sample_shapes(src, calibration)}))
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=os.pathsep.join(
        filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])))
    try:
        proc = subprocess.run([sys.executable, "-m", "converters.branch_fold", str(request)],
                              env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        proc = None
    lines = (proc.stdout or "").strip().splitlines() if proc is not None else []
    steps = json.loads(lines[-1]) if lines and proc.returncode == 0 else None
    if steps is None or not out.exists():
        why = "timed out" if proc is None else one_line(proc.stderr or "no output", limit=300)
        raise ConversionError(f"taking the branches of {', '.join(values)} failed: {why}",
                              stage="quantize", tool="onnxslim", cause=why)
    return steps


def _sample_shapes(model: Path, calibration: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Each input's shape for one sample as the model takes it (no batch axis of the data's:
    a recurrent state is stacked whole samples, one rank higher than the input)."""
    import onnx

    ranks = {i.name: len(i.type.tensor_type.shape.dim)
             for i in onnx.load(str(model), load_external_data=False).graph.input}
    return {name: list(arr.shape[1:]) if ranks.get(name) == arr.ndim - 1 else
            [1, *arr.shape[1:]] for name, arr in calibration.items() if arr.ndim}


def _child(request_path: str) -> int:
    from .onnx_cleanup import clean_onnx

    request = json.loads(Path(request_path).read_text())
    result = clean_onnx(Path(request["source"]), Path(request["out"]),
                        constant_inputs=request["values"], input_shapes=request["shapes"])
    if not result.fixed_inputs or result.op_counts.get("If"):
        print(f"onnxslim kept {result.op_counts.get('If', 0)} If node(s) in the main graph",
              file=sys.stderr)
        return 1
    print(json.dumps(result.steps))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
