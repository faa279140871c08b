"""Pass configs: typed, frozen, bad values refused with one line naming the pass and option."""

from __future__ import annotations

import pytest

from converters.passes import available_passes, resolve_recipe
from core.errors import ConfigError, UnknownNameError
from profiles import RecipeStep

BUILTIN = ["distill", "lowrank", "prune", "prune_channels", "qat", "transfer"]


def test_builtin_passes_are_listed() -> None:
    assert set(BUILTIN) <= set(available_passes())


@pytest.mark.parametrize("name, options, field", [
    ("prune", {"amount": 1.5}, "amount"),
    ("prune", {"amout": 0.5}, "amout"),
    ("prune", {"scope": "row"}, "scope"),
    ("prune_channels", {"ratio": 0}, "ratio"),
    ("lowrank", {"energy": 0}, "energy"),
    ("lowrank", {"ratio": 1.0}, "ratio"),
    ("distill", {"width": 2}, "width"),
    ("distill", {"alpha": -0.1}, "alpha"),
    ("distill", {"student": "not a ref"}, "student"),
    ("qat", {"epochs": 0}, "epochs"),
    ("transfer", {"num_classes": 1}, "num_classes"),
])
def test_bad_option_is_one_line(name: str, options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"recipe step '{name}': option '{field}'") as err:
        resolve_recipe([RecipeStep(name=name, options=options)])
    assert "\n" not in str(err.value)


def test_unknown_pass_suggests_the_builtin() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'prune_channels'"):
        resolve_recipe([RecipeStep(name="prune_channel")])


def test_options_are_recorded_with_defaults() -> None:
    step = resolve_recipe([RecipeStep(name="distill", options={"width": 0.25})])[0].to_dict()
    assert step["options"]["width"] == 0.25 and step["options"]["temperature"] == 2.0
    with pytest.raises(Exception):  # frozen
        resolve_recipe([RecipeStep(name="qat")])[0].config.epochs = 5  # type: ignore[misc]


@pytest.mark.parametrize("name", ["distill", "qat", "transfer"])
def test_training_passes_need_the_train_split(name: str) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pass_kit

    from converters.passes import apply_recipe

    with pytest.raises(ConfigError, match=rf"pass '{name}' needs training data") as err:
        apply_recipe(pass_kit.trained_cnn(), [RecipeStep(name=name)],
                     pass_kit.dataset(with_train=False))
    assert "\n" not in str(err.value)
