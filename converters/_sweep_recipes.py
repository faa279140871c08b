"""Sweep recipes: what ``edgeship compare`` builds — the defaults and ``--recipes`` files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ConfigError
from profiles import Profile, RecipeStep

from ._util import one_line

__all__ = ["SweepRecipe", "default_recipes", "load_recipes"]


class SweepRecipe(BaseModel):
    """One candidate: ``passes`` (registry names + options), then one artifact.

    Args:
        name: the row's label.
        format: ``onnx`` or ``tflite``.
        precision: ``fp32``, ``fp16`` or ``int8``.
        mode: int8 only: ``static`` (calibrated QDQ / full-integer) or ``dynamic``.
        per_channel: int8 weights per channel (else per tensor).
        passes: compression passes applied to the torch model before export.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    format: Literal["onnx", "tflite"] = "onnx"
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    mode: Literal["static", "dynamic"] = "static"
    per_channel: bool = True
    passes: tuple[RecipeStep, ...] = ()


def default_recipes(profile: Profile, passes: Sequence[str] | None = None) -> list[SweepRecipe]:
    """fp32, int8 static, int8 dynamic, fp16 per profile format, plus each registered pass."""
    from .passes import available_passes

    recipes: list[SweepRecipe] = []
    if "onnx" in profile.formats or not profile.formats:
        recipes += [SweepRecipe(name="fp32"), SweepRecipe(name="int8-static", precision="int8"),
                    SweepRecipe(name="int8-dynamic", precision="int8", mode="dynamic"),
                    SweepRecipe(name="fp16", precision="fp16")]
    if "tflite" in profile.formats:
        recipes += [SweepRecipe(name=f"tflite-{p}", format="tflite", precision=p)
                    for p in ("fp32", "int8")]
    fmt = "onnx" if "onnx" in profile.formats else "tflite"
    for name in available_passes() if passes is None else passes:
        step = (RecipeStep(name=name),)
        recipes += [SweepRecipe(name=f"{name}+fp32", format=fmt, passes=step),
                    SweepRecipe(name=f"{name}+int8", format=fmt, precision="int8", passes=step)]
    return recipes


def load_recipes(paths: Sequence[str | Path]) -> list[SweepRecipe]:
    """Recipes from YAML/JSON files or directories of them (a mapping, a list, or ``recipes:``)."""
    recipes: list[SweepRecipe] = []
    for given in paths:
        path = Path(given)
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json")) \
            if path.is_dir() else [path]
        if not files or not files[0].is_file():
            raise ConfigError(f"recipe file {path} does not exist (or the directory holds no "
                              ".yaml/.json); check --recipes")
        for f in files:
            recipes += _read_recipe_file(f)
    names = [r.name for r in recipes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"recipe names used twice: {', '.join(dupes)}; give each a unique name")
    return recipes


def _read_recipe_file(path: Path) -> list[SweepRecipe]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read recipes ({one_line(exc)})") from exc
    items = doc.get("recipes", doc) if isinstance(doc, dict) else doc
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected a recipe mapping, a list, or recipes: [...]")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(SweepRecipe.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "(recipe)"
            raise ConfigError(f"{path}: recipe {i + 1}: {field}: {err['msg']} "
                              f"(got {err.get('input')!r})") from exc
    return out
