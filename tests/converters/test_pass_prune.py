"""prune / prune_channels: sparsity reached, dense export unchanged; channels really removed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pass_kit  # noqa: E402

from converters.passes import apply_recipe  # noqa: E402
from core.errors import ConfigError  # noqa: E402
from profiles import RecipeStep  # noqa: E402

_threads = pytest.fixture(autouse=True, scope="module")(pass_kit.one_thread)


def _run(model, name: str, data=None, **options):
    results: list[dict] = []
    out = apply_recipe(model, [RecipeStep(name=name, options=options)],
                       data if data is not None else pass_kit.dataset(), results)
    return out, results[0]["result"]


def _onnx(model, path: Path) -> Path:
    from converters.export_onnx import export_onnx
    from converters.load import LoadedModel

    loaded = LoadedModel("module", "test", "0", model)
    export_onnx(loaded, {"input": pass_kit.digits()["xe"][:1]}, path, 18, ["logits"])
    return path


def _weights(path: Path) -> dict[str, tuple[int, ...]]:
    import onnx

    return {i.name: tuple(i.dims) for i in onnx.load(str(path)).graph.initializer if len(i.dims) >= 2}


def test_unstructured_global_reaches_sparsity_and_export_stays_dense(tmp_path: Path) -> None:
    model, result = _run(pass_kit.trained_cnn(), "prune", amount=0.6)
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.6, abs=1e-3) and result["sparsity"] == pytest.approx(0.6, abs=1e-3)
    assert not any(n.endswith("_orig") for n, _ in model.named_parameters())  # made permanent
    dense = _onnx(pass_kit.trained_cnn(), tmp_path / "dense.onnx").stat().st_size
    pruned = _onnx(model, tmp_path / "pruned.onnx").stat().st_size
    assert abs(pruned - dense) < 0.01 * dense  # masks: same size in a dense runtime
    assert result["zlib_bytes_after"] < 0.8 * result["zlib_bytes_before"]
    assert "neither the size nor the latency" in result["dense_runtime_note"]


def test_unstructured_per_layer_and_threshold() -> None:
    model, result = _run(pass_kit.trained_cnn(), "prune", amount=0.3, scope="layer")
    assert all(s == pytest.approx(0.3, abs=0.01) for s in result["layer_sparsity"].values())
    model, _ = _run(pass_kit.trained_cnn(), "prune", threshold=0.05)
    w = model[3].weight.detach()
    assert bool((w.abs() >= 0.05).eq(w != 0).all())


def test_structured_export_has_fewer_channels_and_is_smaller(tmp_path: Path) -> None:
    original = pass_kit.trained_cnn()
    model, result = _run(pass_kit.trained_cnn(), "prune_channels", ratio=0.5, finetune_epochs=1,
                         lr=2e-3)
    assert result["channels"]["0"] == [16, 8] and result["channels"]["3"] == [32, 16]
    assert result["channels"]["9"] == [10, 10]  # the classifier keeps its classes
    assert result["parameters_after"] < 0.4 * result["parameters_before"]
    before = _onnx(original, tmp_path / "a.onnx")
    after = _onnx(model, tmp_path / "b.onnx")
    convs = sorted(s for s in _weights(after).values() if len(s) == 4)
    assert convs == [(8, 1, 3, 3), (16, 8, 3, 3)]
    assert after.stat().st_size < 0.5 * before.stat().st_size
    assert result["accuracy_after"] >= result["accuracy_pruned"]


def test_finetune_without_train_split_is_one_line_config_error() -> None:
    data = pass_kit.dataset(with_train=False)
    with pytest.raises(ConfigError, match=r"pass 'prune_channels' needs training data.*train\.") as err:
        _run(pass_kit.trained_cnn(), "prune_channels", data, finetune_epochs=1)
    assert "\n" not in str(err.value)


def test_structural_pass_refuses_an_exported_graph() -> None:
    import torch

    graph = torch.export.export(pass_kit.trained_cnn(), (torch.zeros(1, 1, 28, 28),)).module()
    with pytest.raises(ConfigError, match="needs the model's Python module"):
        _run(graph, "prune_channels")
    pruned, result = _run(graph, "prune", amount=0.5)  # masks work on any module's weights
    assert result["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert np.isfinite(pruned(torch.zeros(1, 1, 28, 28)).detach().numpy()).all()
