"""Recipes through ``converters.build_bundle``: a profile YAML recipe end to end; QAT → int8 gate."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pass_kit  # noqa: E402

_threads = pytest.fixture(autouse=True, scope="module")(pass_kit.one_thread)

FACTORY = '''
import sys
sys.path.insert(0, {kit!r})
import pass_kit

def build():
    return pass_kit.trained_cnn()
'''


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``pass_factory:build`` (the trained DigitsCNN) and a data file with a training split."""
    out = tmp_path_factory.mktemp("pass_bundle")
    (out / "pass_factory.py").write_text(FACTORY.format(kit=str(Path(__file__).parent)))
    sys.path.insert(0, str(out))
    d = pass_kit.digits()
    np.savez(out / "digits.npz", input=d["xe"], labels=d["ye"],
             **{"train.input": d["x"][:600], "train.labels": d["y"][:600]})
    return "pass_factory:build", out / "digits.npz"


def _profile(tmp_path: Path, recipe: str, drop: float):
    from profiles import load_profile

    path = tmp_path / "passprof.yaml"
    path.write_text(f"arch: x86_64\nartifacts:\n  - {{format: onnx, precision: fp32}}\n"
                    f"  - {{format: onnx, precision: int8}}\nrecipe:\n{recipe}"
                    f"budgets: {{max_accuracy_drop: {drop}}}\n")
    return load_profile(str(path))


def _initializers(path: Path) -> list[tuple[int, ...]]:
    import onnx

    return sorted(tuple(i.dims) for i in onnx.load(str(path)).graph.initializer if len(i.dims) == 4)


def test_yaml_recipe_end_to_end(source: tuple[str, Path], home, tmp_path: Path) -> None:
    from converters import build_bundle

    recipe = ("  - {name: prune_channels, options: {ratio: 0.5, finetune_epochs: 2, lr: 0.002}}\n"
              "  - {name: lowrank, options: {energy: 0.98}}\n")
    bundle = build_bundle(source[0], _profile(tmp_path, recipe, 0.05), source[1], home)
    steps = bundle.manifest["recipe"]
    assert [s["name"] for s in steps] == ["prune_channels", "lowrank"]
    assert steps[0]["options"]["ratio"] == 0.5 and steps[1]["options"]["energy"] == 0.98
    fp32 = bundle.path / "model.fp32.onnx"
    shapes = _initializers(fp32)
    assert all(s[0] <= 16 for s in shapes)  # the 32-channel conv is gone
    assert all(a["verification"]["passed"] for a in bundle.manifest["artifacts"])
    fp32_reason = bundle.manifest["artifacts"][0]["verification"]["reason"]
    assert "fp32 tolerance (against the model after the recipe)" in fp32_reason


def test_qat_artifact_passes_the_int8_gate(source: tuple[str, Path], home, tmp_path: Path) -> None:
    from converters import build_bundle

    recipe = "  - {name: qat, options: {epochs: 1}}\n"
    bundle = build_bundle(source[0], _profile(tmp_path, recipe, 0.02), source[1], home)
    assert bundle.manifest["recipe"][0]["options"]["per_channel"] is True
    int8 = next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-int8")
    assert int8["verification"]["passed"] and int8["verification"]["accuracy_drop"] <= 0.02
    assert int8["size_bytes"] < 0.5 * bundle.manifest["files"]["model.fp32.onnx"]["size_bytes"]
