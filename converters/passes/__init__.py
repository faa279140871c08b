"""The one registry of compression passes: name → typed config → handler.

A pass is a function ``handler(model, config, dataset)`` returning the new model, or
``(model, result)`` where *result* is a JSON-able dict of what changed (parameters before/after,
channels removed, ranks, losses); it is registered with
:func:`register_pass` together with a pydantic config class (``extra="forbid"``), so a
profile's recipe step ``{name, options}`` is validated before anything heavy runs and the
manifest records every option, defaults included (plus each pass's result when
:func:`apply_recipe` is given a ``results`` list). Built-in passes live one per module in this
package and are imported only when a recipe names them (see ``_BUILTIN``): ``prune``
(unstructured magnitude), ``prune_channels`` (structured, torch-pruning), ``lowrank`` (SVD),
``distill``, ``qat`` (fake-quant fine-tune), ``transfer``.

    @register_pass("prune", PruneConfig)
    def prune(model, config, dataset): ...
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from core.errors import ConfigError, ConversionError, UnknownNameError

__all__ = ["PassHandler", "ResolvedStep", "apply_recipe", "available_passes", "register_pass",
           "resolve_recipe"]

log = logging.getLogger(__name__)

PassHandler = Callable[[Any, BaseModel, Any], Any]
_BUILTIN: dict[str, str] = {
    name: f"{__name__}.{module}" for name, module in {
        "prune": "prune", "prune_channels": "prune_structured", "lowrank": "lowrank",
        "distill": "distill", "qat": "qat", "transfer": "transfer"}.items()}
"""Built-in pass name → module that registers it (imported on first use)."""
_REGISTRY: dict[str, tuple[type[BaseModel], PassHandler]] = {}


@dataclass(frozen=True)
class ResolvedStep:
    """A recipe step with its validated config."""

    name: str
    config: BaseModel

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: name and every option, defaults included."""
        return {"name": self.name, "options": self.config.model_dump(mode="json")}


def register_pass(name: str, config_cls: type[BaseModel]) -> Callable[[PassHandler], PassHandler]:
    """Decorator: register *handler* as the pass *name*, configured by *config_cls*."""
    if not (isinstance(config_cls, type) and issubclass(config_cls, BaseModel)):
        raise TypeError(f"pass {name!r}: config_cls must be a pydantic model class")

    def decorate(handler: PassHandler) -> PassHandler:
        if name in _REGISTRY and _REGISTRY[name][1] is not handler:
            raise ValueError(f"compression pass {name!r} is registered twice")
        _REGISTRY[name] = (config_cls, handler)
        return handler

    return decorate


def available_passes() -> list[str]:
    """Names a recipe may use."""
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def resolve_recipe(steps: Sequence[Any]) -> list[ResolvedStep]:
    """Validate recipe steps (objects with ``name`` and ``options``) into typed configs."""
    return [_resolve(step.name, dict(step.options)) for step in steps]


def apply_recipe(model: Any, steps: Sequence[Any], dataset: Any,
                 results: list[dict[str, Any]] | None = None) -> Any:
    """Apply each pass of the recipe in order; return the transformed model.

    When *results* is a list, one manifest entry per step is appended to it:
    ``{"name", "options", "result"}`` (``result`` is what the pass reported, or ``{}``).
    """
    for step in resolve_recipe(steps):
        handler = _lookup(step.name)[1]
        log.info("applying compression pass %s %s", step.name, step.config.model_dump())
        try:
            result = handler(model, step.config, dataset)
        except (ConfigError, ConversionError):
            raise
        except Exception as exc:  # a pass failing is a conversion error, named
            raise ConversionError(f"compression pass {step.name!r} failed: "
                                  f"{type(exc).__name__}: {exc}; check its options") from exc
        if isinstance(result, tuple):
            result, report = result
        else:
            report = {}
        log.info("compression pass %s: %s", step.name, report)
        if results is not None:
            results.append({**step.to_dict(), "result": report})
        model = model if result is None else result
    return model


def _resolve(name: str, options: dict[str, Any]) -> ResolvedStep:
    config_cls = _lookup(name)[0]
    try:
        return ResolvedStep(name, config_cls.model_validate(options))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(options)"
        raise ConfigError(f"recipe step {name!r}: option {field!r}: {err['msg']} "
                          f"(got {err.get('input')!r})") from exc


def _lookup(name: str) -> tuple[type[BaseModel], PassHandler]:
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        raise UnknownNameError("compression pass", name, available_passes(),
                               hint="see converters/passes/")
    return _REGISTRY[name]
