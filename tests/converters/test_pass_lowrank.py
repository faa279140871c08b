"""lowrank: the factorized layer has the chosen rank, and the output stays close at high energy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pass_kit  # noqa: E402

from converters.passes import apply_recipe  # noqa: E402
from profiles import RecipeStep  # noqa: E402

_threads = pytest.fixture(autouse=True, scope="module")(pass_kit.one_thread)


def _lowrank(model, **options):
    results: list[dict] = []
    out = apply_recipe(model, [RecipeStep(name="lowrank", options=options)], None, results)
    return out, results[0]["result"]


def _rank4_model():
    """Linear(64→48) and Conv2d(8→24, 3×3) whose weights have rank 4 plus a little noise."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 24, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(24 * 4 * 4, 48))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            rows, cols = layer.weight.shape[0], layer.weight[0].numel()
            low = torch.randn(rows, 4) @ torch.randn(4, cols) + 1e-3 * torch.randn(rows, cols)
            layer.weight.copy_(low.reshape(layer.weight.shape))
    return model.eval()


def test_energy_picks_the_true_rank_and_keeps_outputs() -> None:
    import torch

    model = _rank4_model()
    x = torch.randn(16, 8, 4, 4)
    with torch.no_grad():
        ref = model(x)
    out, result = _lowrank(model, energy=0.999)
    assert {n: r["rank"] for n, r in result["layers"].items()} == {"0": 4, "2": 4}
    conv1, conv2 = out[0]
    assert tuple(conv1.weight.shape) == (4, 8, 3, 3) and tuple(conv2.weight.shape) == (24, 4, 1, 1)
    lin1, lin2 = out[2]
    assert tuple(lin1.weight.shape) == (4, 384) and tuple(lin2.weight.shape) == (48, 4)
    with torch.no_grad():
        got = out(x)
    assert torch.allclose(got, ref, atol=1e-2 * float(ref.abs().max()))
    assert result["parameters_after"] < 0.25 * result["parameters_before"]


def test_ratio_bounds_parameters_and_useless_factorizations_are_skipped() -> None:
    model, result = _lowrank(pass_kit.trained_cnn(), ratio=0.25)
    for layer in result["layers"].values():
        assert layer["parameters"][1] <= 0.25 * layer["parameters"][0]
    model, result = _lowrank(pass_kit.trained_cnn(), energy=1.0)  # full rank never saves
    assert result["layers"] == {} and set(result["skipped"]) == {"0", "3", "7", "9"}


def test_demo_cnn_at_high_energy_keeps_accuracy() -> None:
    data = pass_kit.dataset()
    base = pass_kit.accuracy(pass_kit.trained_cnn(), data)
    results: list[dict] = []
    model = apply_recipe(pass_kit.trained_cnn(), [RecipeStep(name="lowrank",
                                                            options={"energy": 0.95})], data, results)
    result = results[0]["result"]
    assert result["parameters_after"] < result["parameters_before"]
    assert pass_kit.accuracy(model, data) >= base - 0.03
