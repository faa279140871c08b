"""converters.passes: the one registry of compression passes."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from converters import passes
from converters.passes import apply_recipe, register_pass, resolve_recipe
from core.errors import ConfigError, ConversionError, UnknownNameError
from profiles import RecipeStep


class ScaleConfig(BaseModel):
    """Multiply every parameter by ``factor``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    factor: float = Field(default=2.0, gt=0)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A private registry with one test-only pass ``scale`` and one failing pass."""
    monkeypatch.setattr(passes, "_REGISTRY", {})

    @register_pass("scale", ScaleConfig)
    def scale(model, config: ScaleConfig, dataset):
        import torch

        with torch.no_grad():
            for p in model.parameters():
                p.mul_(config.factor)
        return model

    @register_pass("boom", ScaleConfig)
    def boom(model, config, dataset):
        raise ValueError("no good")


def test_apply_runs_passes_in_order(registry: None) -> None:
    import torch

    model = torch.nn.Linear(2, 2, bias=False)
    before = model.weight.detach().clone()
    steps = [RecipeStep(name="scale"), RecipeStep(name="scale", options={"factor": 3})]
    out = apply_recipe(model, steps, dataset=None)
    assert torch.allclose(out.weight, before * 6)
    assert [s.to_dict() for s in resolve_recipe(steps)] == [
        {"name": "scale", "options": {"factor": 2.0}}, {"name": "scale", "options": {"factor": 3.0}}]


def test_unknown_pass_suggests(registry: None) -> None:
    with pytest.raises(UnknownNameError, match="unknown compression pass 'scal'; did you mean 'scale'"):
        resolve_recipe([RecipeStep(name="scal")])


def test_bad_option_is_config_error(registry: None) -> None:
    with pytest.raises(ConfigError, match=r"recipe step 'scale': option 'factr'"):
        resolve_recipe([RecipeStep(name="scale", options={"factr": 2})])
    with pytest.raises(ConfigError, match=r"option 'factor'.*greater than 0"):
        resolve_recipe([RecipeStep(name="scale", options={"factor": -1})])


def test_failing_pass_is_conversion_error(registry: None) -> None:
    with pytest.raises(ConversionError, match="compression pass 'boom' failed: ValueError: no good"):
        apply_recipe(object(), [RecipeStep(name="boom")], None)


def test_double_registration_refused(registry: None) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_pass("scale", ScaleConfig)(lambda m, c, d: m)
