"""A torch model names its outputs (``output_names``): an embedding is not judged as class scores.

The zoo's MiniLM sentence embedding used to be exported as ``logits`` (the name edgeship gives one
2-D output), so the gate judged it by top-1 agreement over 384 "classes" (0 agreement in int8).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from converters import build_bundle
from converters.export_onnx import output_names_for
from converters.fidelity import infer_kind
from core.paths import Paths
from profiles import Artifact, load_profile

HERE = Path(__file__).resolve().parent


class Embedder(torch.nn.Module):
    """8 features → a unit-norm 6-d embedding, named for what it is."""

    output_names = ("embedding",)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised embedding."""
        return torch.nn.functional.normalize(self.fc(x), dim=1)


def embedder() -> torch.nn.Module:
    """The module:factory source."""
    return Embedder().eval()


def test_declared_names_win_and_bad_ones_are_ignored() -> None:
    one = [np.zeros((1, 6), np.float32)]
    assert output_names_for(one, Embedder()) == ["embedding"]
    assert output_names_for(one) == ["logits"]
    assert output_names_for(one + one, Embedder()) == ["output_0", "output_1"]  # count differs
    bad = Embedder()
    bad.output_names = ("",)  # type: ignore[assignment]
    assert output_names_for(one, bad) == ["logits"]


def test_embedding_output_gets_the_embedding_check(tmp_path: Path) -> None:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    profile = load_profile("sim").model_copy(update={"artifacts": (
        Artifact(format="onnx", precision="fp32"), Artifact(format="onnx", precision="fp16"))})
    bundle = build_bundle("test_output_names:embedder", profile, None, Paths(home=tmp_path),
                          input_shapes={"x": (1, 8)})
    fp16 = next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-fp16")
    [out] = fp16["verification"]["outputs"]
    assert (out["name"], out["kind"], out["kind_from"]) == ("embedding", "embedding", "name")
    assert [c["metric"] for c in out["checks"]] == ["cosine"] and out["top1_agreement"] is None
    ref = np.eye(4, 6, dtype=np.float32)
    assert infer_kind("embedding", ref, 1) == ("embedding", "name")
    assert infer_kind("sentence_embedding", ref, 1) == ("embedding", "name")
    assert infer_kind("logits", ref, 1) == ("classes", "name")  # why the name had to change
