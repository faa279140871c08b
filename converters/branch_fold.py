"""Static int8 for weights inside ``If`` branches: take the branch the data always takes.

onnxruntime's static quantizers skip If/Loop subgraphs (:mod:`converters.quantize_subgraphs`),
so a model whose network sits in the branches of an ``If`` on a setting — Silero VAD chooses its
16 / 8 kHz network on the sample rate ``sr`` — gets only dynamic int8 (``ConvInteger``; 305 of
Silero's 518 speech decisions flipped) and, for TensorRT, no int8 at all. When the calibration
data holds such a setting at one value (a scalar integer input: :func:`branch_settings`),
:func:`take_branches` makes it a constant and onnxslim keeps the one branch it takes (the
``constant inputs`` clean-up of :func:`converters.onnx_cleanup.clean_onnx`, as the TFLite route
does): the int8 artifact serves that value only and no longer takes the input (``fixed_inputs``
in its converter info); the board's agent feeds an artifact the inputs it declares.

onnxslim runs in a child process: imported, it lowers onnxruntime's process-wide log severity.
(onnxruntime's own graph optimiser cannot do it: its ``If`` inlining fails on Silero's branch,
"… is not If node's input or previous node output in this subgraph".)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from ._util import one_line

__all__ = ["KEEP", "Branches", "branch_settings", "take_branches"]

_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300
KEEP = 2
"""Models with branches taken kept in memory: a failing int8 artifact's remedies each build
their own quantizer of the same model (keep-float, weight-ops-only, int16, …), and each would
start onnxslim in a child process again for the same file."""
_TAKEN: OrderedDict[tuple[str, str], tuple[bytes, list[dict[str, Any]]] | ConversionError] = \
    OrderedDict()


@dataclass(frozen=True)
class Branches:
    """What :func:`take_branches` needs: the settings to fix and every input's sample shape."""

    values: dict[str, int]
    """Scalar integer inputs the data holds at one value (name → value)."""
    shapes: dict[str, list[int]]
    """Each input's shape for one sample (Silero's inner ``If`` nodes test the chunk length)."""


def branch_settings(model: Path, calibration: dict[str, np.ndarray]) -> Branches:
    """The settings of *model* to fix (:class:`Branches`; ``values`` empty when there are none):
    its scalar integer inputs the data holds at one value, when the main graph branches
    (``If``) and weights sit in its subgraphs."""
    import onnx

    from .onnx_cleanup import held_setting, sample_shape
    from .quantize_subgraphs import subgraph_weights

    graph = onnx.load(str(model), load_external_data=False).graph
    if not any(n.op_type == "If" for n in graph.node) or not subgraph_weights(graph):
        return Branches({}, {})
    ranks = {i.name: len(i.type.tensor_type.shape.dim) for i in graph.input}
    values = {name: value for name, arr in calibration.items()
              if (value := held_setting(ranks.get(name), arr)) is not None}
    shapes = {name: sample_shape(ranks.get(name), arr) for name, arr in calibration.items()
              if arr.ndim}
    return Branches(values, shapes)


def take_branches(src: Path, out: Path, branches: Branches) -> list[dict[str, Any]]:
    """Write *src* with the inputs of ``branches.values`` made constants and the branches they
    take kept (onnxslim, in a child process; the same request again is served from memory) to
    *out*; return the clean-up steps (manifest form). Raises :class:`ConversionError` when no
    branch could be taken."""
    from ._util import file_sha256

    key = (file_sha256(src), json.dumps([branches.values, branches.shapes], sort_keys=True))
    if key not in _TAKEN:
        try:
            _TAKEN[key] = _run_child(src, out, branches)
        except ConversionError as exc:  # the same model fails the same way: said once, kept
            _TAKEN[key] = exc
        while len(_TAKEN) > KEEP:
            _TAKEN.popitem(last=False)
    _TAKEN.move_to_end(key)
    taken = _TAKEN[key]
    if isinstance(taken, ConversionError):
        raise taken
    model, steps = taken
    if not out.exists():
        out.write_bytes(model)
    return [dict(step) for step in steps]


def _run_child(src: Path, out: Path,
               branches: Branches) -> tuple[bytes, list[dict[str, Any]]]:
    """The taken model's bytes and the clean-up steps, from the onnxslim child."""
    request = out.with_suffix(".json")
    request.write_text(json.dumps({"source": str(src), "out": str(out),
                                   "values": branches.values, "shapes": branches.shapes}))
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
        raise ConversionError(f"taking the branches of {', '.join(branches.values)} failed: "
                              f"{why}", stage="quantize", tool="onnxslim", cause=why)
    return out.read_bytes(), steps


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
