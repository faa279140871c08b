"""The build pipeline for a ``.tflite`` source: it ships as it is, verified against itself.

A TFLite file cannot be re-quantized or turned into ONNX here, so the profile's other artifacts
are left out with that reason; the file itself is run, judged and timed like any artifact.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from profiles import Profile

from ._isolate import LeftOut, check_survivors
from ._runners import TfliteRunner
from .checks import data_part, verify_file
from .data import Dataset, save_board_samples
from .feeds import sample_feed
from .loaded import LoadedModel
from .source_tflite import tflite_precision
from .steps import timed
from .verify import Reference, collect_outputs, host_threads, reference_accuracy

__all__ = ["build_tflite_artifacts"]

log = logging.getLogger(__name__)


def build_tflite_artifacts(work: Path, loaded: LoadedModel, data: Dataset, profile: Profile,
                           progress: Any) -> dict[str, Any]:
    """Copy the source as ``model.<precision>.tflite``, verify it; return manifest parts."""
    precision = tflite_precision(Path(loaded.ref))
    key = f"tflite-{precision}"
    shutil.copyfile(loaded.ref, work / f"model.{precision}.tflite")
    inputs = {k: data.inputs[k] for k in loaded.input_names}
    shapes = {k: v for k, v in data.sample_shapes().items() if k in inputs}
    progress(f"running the source TFLite model on {len(next(iter(inputs.values())))} samples")
    source = TfliteRunner(Path(loaded.ref), shapes, host_threads(profile.runtime.threads))
    ref = Reference.of(collect_outputs(source.run, inputs, shapes=shapes),
                       [o["name"] for o in source.outputs], profile.fidelity,
                       sample_feed(inputs, 0, shapes))
    left = [LeftOut(a.key, "convert", "edgeship", f"a .tflite source ships as itself ({key}); "
                    f"it cannot be converted to {a.key} here", [], a.required)
            for a in profile.artifacts if a.key != key]
    if left:
        log.warning("a .tflite source ships as %s only; left out %s", key,
                    ", ".join(lo.key for lo in left))
    made = {"tool": "copy", "method": "source TFLite shipped as is"}
    progress(f"verifying {key}")
    with timed("verify", key):
        entry, result = verify_file(work, key, made, inputs, shapes, ref, data.labels, profile)
    required = any(a.key == key and a.required for a in profile.artifacts)
    if not result.passed:
        left.insert(0, LeftOut(key, "verify", "ai_edge_litert", result.reason, [], required))
    check_survivors(int(result.passed), left)
    save_board_samples(work / "samples.npz", inputs)
    desc = "none (TFLite source shipped as is, not re-quantized)"
    return {"data": data_part(data, desc), "artifacts": [entry],
            "reference": {"accuracy": reference_accuracy(ref, data.labels)},
            "left_out": [lo.to_dict() for lo in left]}
